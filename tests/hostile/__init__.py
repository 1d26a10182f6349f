"""The hostile-input suite: what a careless or hostile user gives the CLI and the app.

Every case asserts the exit code, a message without a traceback, and that nothing outside the
target changed (a snapshot of the neighbouring files). ``test_count.py`` holds the number of
cases this suite states, and fails when the two disagree.
"""
