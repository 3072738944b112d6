"""Services: every state change and commit, grouped along the data flow.

conveyor (a job from intake to its end), schedules, alerts, nodes, views (read models), over
context (ServiceContext, UnitOfWork) and events (the job's event log).
"""
