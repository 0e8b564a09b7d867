"""The operator console: server-rendered pages (Jinja2) over the API's own functions, in English and Persian."""
