"""StableNew: a desktop control room for Stable Diffusion servers."""

import os
import sys

__version__ = "0.1.0"

# httpx's package imports its command-line client whenever click and rich are installed (they
# are: `make run` installs the test extras, import-linter brings them). That put rich's console,
# click and their imports into every start of StableNew, window or CLI: ~40-70 ms here, for a
# client we never use. A None entry makes that one import fail, as it does where they are not
# installed, and httpx falls back to its stub `main`. (No effect once httpx was imported.)
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

# pydantic looks for plugins (its "pydantic" entry-point group) when it builds the first model:
# a read of every installed package's metadata, 6-9 ms of each start here and more in a larger
# environment. We use none. A value the user set (to name plugins to skip) is kept.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
