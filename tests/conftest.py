import os

pytest_plugins = ["plugins.data", "plugins.stack", "plugins.weights"]

# The shipped configs name their bucket as s3://${VTON_BUCKET}/... (one setting, the cluster's env
# file); tests that load them without the local stack's environment get the stack's bucket name.
os.environ.setdefault("VTON_BUCKET", "vton")
