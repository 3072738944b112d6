"""Services: every state change and commit; collaborators are passed in."""
