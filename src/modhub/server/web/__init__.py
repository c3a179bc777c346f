"""The hub's website: server-rendered pages for people, next to the JSON API for programs.

``router`` is included by ``modhub.server.app.create_app`` after the API. Pages
are Jinja2 templates (``templates/``) styled by one hand-written stylesheet
(``static/site.css``); they work without JavaScript, and ``static/site.js``
only adds copy buttons. Database access goes through ``modhub.server.services``.

    routes.py     the URL map (thin: parse, call a service, render)
    params.py     the home page's query string, parsed leniently
    negotiate.py  HTML for browsers, JSON for the modhub client
    views.py      what the module page shows, from the services' answers
    cards.py      model cards: Markdown to sanitised HTML
    render.py     the Jinja2 environment, filters and security headers
    vendor.py     the "try it" panel's files: static/tryit/, sample photos, the browser runtime
"""

from modhub.server.web.routes import router

__all__ = ["router"]
