"""The whole suite: the test control plane's fixtures are a plugin, started only when a test asks for them."""

pytest_plugins = ["tests.cluster.fixtures"]
