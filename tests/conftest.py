pytest_plugins = ["plugins.stack", "plugins.weights"]
