"""The PostgreSQL backend of the state store (Compose and Kubernetes modes); needs fracta[postgres].

connect.py opens connections and runs operations (clear errors, retries, passwords hidden),
listen.py receives notifications, migrations.py applies the versioned schema, check.py is what
`fracta doctor` asks of the database.
"""
