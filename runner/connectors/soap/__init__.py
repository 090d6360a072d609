"""The soap connector: WSDL operations bound in the manifest, on zeep (docs/soap.md)."""
