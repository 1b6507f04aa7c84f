from scripts.stack.cli import app

app(prog_name="python -m scripts.stack")
