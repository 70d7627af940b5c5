"""Web plumbing shared by every blueprint: the app class and its URL maps, the credential
gate, JSON responses and error pages, security headers, the body limit, trusted hosts,
the request log and form validators. It may import auth, db, ratelimit and core, never a
blueprint."""
