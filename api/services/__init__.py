"""The API's service layer: what the routes do, kept apart from HTTP plumbing."""
