"""Run the `polaris` command line in process, the way a shell would see it."""

from chatbot.cli import main


def polaris(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `polaris ARGS...`."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
