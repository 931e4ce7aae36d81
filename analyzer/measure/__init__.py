"""Measuring load levels on a live server: level windows, schedules, the server probe and monitor."""
