"""tests/core: being a conftest directory puts it on ``sys.path`` (pytest's prepend import
mode), so every test module below can ``import core_support``."""
