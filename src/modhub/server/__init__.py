"""The modhub hub server: a FastAPI app over SQLAlchemy and content-addressed blob storage.

Layout (one concept per module, Warehouse-style)::

    config.py      ServerSettings, read once and passed to create_app(settings)
    db.py          engine, sessions, migrations (Alembic, run on start)
    models.py      the ORM tables
    storage/       BlobStorage protocol (base), LocalBlobStorage (local), S3BlobStorage (s3)
    errors.py      ApiError and the JSON error answer {"error": {"code", "message"}}
    services/      all database logic: queries (search, detail), publishing, tokens, downloads
    uploads.py     streaming multipart parser that stages an upload on disk while hashing
    api.py         the thin JSON routes under /api/v1/
    app.py         create_app(settings)

Needs the ``server`` extra: ``pip install 'modhub[server]'``.
"""
