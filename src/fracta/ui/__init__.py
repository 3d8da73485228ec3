"""The web view (`fracta ui`): pages served by the control plane over its REST API and event stream."""
