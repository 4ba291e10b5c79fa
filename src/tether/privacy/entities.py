"""The entity types Tether detects, by name. Kept apart from the recognizers, which import
presidio (seconds): the privacy policy and the CLI need only the names."""

PERSONAL = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "STREET_ADDRESS",
    "LOCATION",
    "DATE_OF_BIRTH",
    "ID_NUMBER",
)
SECRETS = ("API_KEY", "PASSWORD", "PRIVATE_KEY")
BUILTIN_ENTITIES = PERSONAL + SECRETS
