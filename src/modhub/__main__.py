from modhub.cli import app

app()
