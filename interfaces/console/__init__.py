"""The web console (`/ui/`): server-rendered pages for an on-call team, over the HTTP API's service."""
