"""The operator console: server-rendered pages (Jinja2) over the API's own functions, in English and Persian.

``pages`` holds the routes, ``forms`` what the forms mean, ``session`` logins and CSRF, ``i18n`` the message
catalogs, ``charts`` the inline SVG charts; registered by ``reconciler.api.app.create_app``.
"""
