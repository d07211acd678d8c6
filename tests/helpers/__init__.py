"""Helpers shared by several test modules (test modules never import each other).

Import them as ``from helpers.cluster import start_scheduler``: pytest puts ``tests/`` on ``sys.path``.
"""
