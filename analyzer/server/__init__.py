"""The server: find and launch tritonserver, control a running one through its API, and record
and put back the models it had before tritune changed them."""
