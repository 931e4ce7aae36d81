"""A sweep end to end: set-up, the loop, the measurer, the policy for each config, the confirmation
round, the shared study's export, and `profile`'s run.
"""
