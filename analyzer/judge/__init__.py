"""The verdict on a measurement, the level search, several models' targets, the answer and the
confirmation statistics.
"""
