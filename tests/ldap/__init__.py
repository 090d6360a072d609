"""The LDAP connector's tests against a real slapd (a package: its modules import ``.helpers``)."""
