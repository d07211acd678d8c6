"""The optimizer: settings chosen from the detected hardware and the models, each with a reason."""
