# The library's version (include/hammer.h's HAMMER_VERSION_STRING; tests/python/test_package.py keeps them equal).
__version__ = "1.1.0"
