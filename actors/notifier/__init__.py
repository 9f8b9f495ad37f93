"""The notifier: dunning emails and alerts, driven by the transactional outbox and sent once.

Pure modules: `policy`, `messages`, `signature`. Adapters: `email` (SMTP), `alerts` (HTTP), `sender`,
`dispatch` (PostgreSQL), `actor` (Ray), `catcher` (dev SMTP server). See docs/NOTIFICATIONS.md.
"""
