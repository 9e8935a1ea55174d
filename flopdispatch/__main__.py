"""``python -m flopdispatch`` and the ``flopdispatch`` console script (see ``flopdispatch/commands/``).

    flopdispatch run [options] SCRIPT [ARGS...]   count an unmodified script (report on stderr)
    flopdispatch model SPEC [options]             hf:<model_type> or package.module:factory
    flopdispatch show REPORT.json [options]       render a saved report again
    flopdispatch demo [options]                   a GPT-2-small training step on meta
"""
import sys

from .commands import main

if __name__ == "__main__":
    sys.exit(main())
