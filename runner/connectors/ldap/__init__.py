"""The LDAP connector (``type: ldap``): see :mod:`runner.connectors.ldap.connector`."""
