from consumer.cli import app

app(prog_name="python -m consumer")
