from devstack.cli import app

app(prog_name="python -m devstack")
