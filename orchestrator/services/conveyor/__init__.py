"""The conveyor: a job from intake through dispatch, submission and polling to its end."""
