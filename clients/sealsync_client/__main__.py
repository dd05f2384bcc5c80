"""`python -m sealsync_client` runs the `sealsync` command line."""
from .cli import main

main(prog_name="sealsync")
