"""What tests share: servers, clients, moto, Lambda events, oracles and strategies.

Test modules import from here (and from ``tests.factories``), never from one another; fixtures
stay in the ``conftest.py`` files, which may import from here too.
"""
