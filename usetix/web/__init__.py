"""Web plumbing shared by every blueprint: the app class and its URL maps (built from what
each blueprint says it answers, and the row-id converter), the credential gate, JSON
responses and error pages, security headers, the body limit, trusted hosts, the request
log and form validators. It may import auth, ratelimit, database, api_contract and core,
never a blueprint."""
