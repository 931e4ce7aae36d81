"""The commands, their parameters, what they print and the progress they show."""
