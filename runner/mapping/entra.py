"""Which Microsoft Entra provisioning expression each provision function replaces.

People migrating from Entra ID provisioning translate their attribute-mapping expressions one
function at a time; this table is what ``docs/mapping-functions.md`` and ``provision test`` show
for that, so a migration can be done by reading one page. ``note`` says what to write differently
and every deliberate difference in the result (checked against Microsoft's own examples by
``tests/test_entra_parity.py``). Microsoft's reference:
https://learn.microsoft.com/entra/identity/app-provisioning/functions-for-customizing-application-data
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Equivalent:
    entra: str
    """The Entra expression the function replaces, as Entra writes it."""
    note: str = ""
    """How the provision form differs, and why a difference in results is harmless."""


EQUIVALENTS: dict[str, Equivalent] = {
    "append": Equivalent("Append(source, suffix)"),
    "base64": Equivalent("ConvertToBase64(source)", "write base64(x, 'utf-16-le'): Entra encodes the "
                         "UTF-16 bytes; provision's default is UTF-8, what most targets expect"),
    "base64_decode": Equivalent("(none)", "provision only"),
    "bit_and": Equivalent("BitAnd(value1, value2)", "Entra's &HF7 hex literals work as they are"),
    "cbool": Equivalent("CBool(expression)", "CBool([a] = [b]) is cbool(a == b); text that is neither "
                        "a number nor a truth word (true/yes/on, false/no/off) fails the object "
                        "instead of reading as false, so a typo in the data is seen"),
    "cdate": Equivalent("CDate(expression)", "the result is ISO 8601 in UTC (2021-06-29T16:00:00Z), "
                        "not M/d/yyyy h:mm:ss tt: the same moment; every date function reads both"),
    "coalesce": Equivalent("Coalesce(source1, ..., defaultValue)", "also skips empty text: an Entra "
                           "attribute is never an empty string (it is absent), so results agree"),
    "count": Equivalent("Count(attribute)"),
    "cstr": Equivalent("CStr(value)"),
    "date_add": Equivalent("DateAdd(interval, value, dateTime)", "the result is ISO 8601, see cdate; "
                           "CDate around the date is optional"),
    "date_diff": Equivalent("DateDiff(interval, date1, date2)", "Entra's letters count as Entra "
                            "(calendar boundaries for yyyy, q, m, ww); the words years, months, weeks "
                            "count whole ones, for ages and tenure"),
    "date_from_num": Equivalent("DateFromNum(value)", "0 and 9223372036854775807 (AD's \"never\") "
                                "give null instead of failing"),
    "format_date_time": Equivalent("FormatDateTime(source, dateTimeStyles, inputFormat, outputFormat)",
                                   "write null for an empty dateTimeStyles; .NET formats work as they are"),
    "guid": Equivalent("Guid()"),
    "ignore_flow_if_null_or_empty": Equivalent("IgnoreFlowIfNullOrEmpty(expression)"),
    "iif": Equivalent("IIF(condition, valueIfTrue, valueIfFalse)", "comparisons are == and != "
                      "(Entra's = and <>); a null or empty attribute in the condition works, where "
                      "Entra's condition check fails (its documented limitation)"),
    "instr": Equivalent("InStr(value1, value2, start, compareType)", "vbBinaryCompare and vbTextCompare "
                        "work as they are"),
    "is_null": Equivalent("IsNull(expression)"),
    "is_null_or_empty": Equivalent("IsNullOrEmpty(expression)"),
    "is_present": Equivalent("IsPresent(expression)"),
    "is_string": Equivalent("IsString(expression)"),
    "item": Equivalent("Item(attribute, index)", "index 0 is rejected by provision validate (Entra: "
                       "\"shouldn't be used\"); -1 is the last item"),
    "join": Equivalent("Join(separator, source1, source2, ...)"),
    "left": Equivalent("Left(string, numChars)", "a null string gives null, not empty text: both clear "
                       "the target attribute"),
    "lower": Equivalent("ToLower(source)", "the same as to_lower"),
    "mid": Equivalent("Mid(source, start, length)"),
    "normalize_diacritics": Equivalent("NormalizeDiacritics(source)", "letters outside Entra's table "
                                       "(ễ, đ, þ) are folded too, where Entra's table says nothing"),
    "not": Equivalent("Not(source)"),
    "now": Equivalent("Now()", "ISO 8601 in UTC, see cdate"),
    "num_from_date": Equivalent("NumFromDate(value)"),
    "pcase": Equivalent("PCase(source, wordSeparators)"),
    "random_string": Equivalent("RandomString(length, minimumNumbers, minimumSpecialCharacters, "
                                "minimumCapital, minimumLowerCase, charactersToAvoid)",
                                "up to 4096 characters (Entra: 256)"),
    "redact": Equivalent("Redact(attribute or value)", "the attribute is masked (***) in logs and "
                         "state, Entra writes [Redact]"),
    "remove_duplicates": Equivalent("RemoveDuplicates(attribute)"),
    "replace": Equivalent("Replace(source, oldValue, regexPattern, regexGroupName, replacementValue, "
                          "replacementAttributeName, template)", "write null for each empty argument; "
                          ".NET (?<name>...) groups and ${name} work as they are"),
    "select_unique_value": Equivalent("SelectUniqueValue(uniqueValueRule1, uniqueValueRule2, ...)",
                                      "works with every target, not only Active Directory"),
    "split": Equivalent("Split(source, delimiter)"),
    "strip_spaces": Equivalent("StripSpaces(source)", "also removes tabs and no-break spaces, which no "
                               "identifier wants"),
    "switch": Equivalent("Switch(source, defaultValue, key1, value1, ...)", "write null for an empty "
                         "defaultValue"),
    "to_lower": Equivalent("ToLower(source, culture)"),
    "to_upper": Equivalent("ToUpper(source, culture)"),
    "upper": Equivalent("ToUpper(source)", "the same as to_upper"),
    "utf8_hex": Equivalent("ConvertToUTF8Hex(source)"),
    "word": Equivalent("Word(string, wordNumber, delimiters)", "the delimiters are optional (white "
                       "space); a null string gives null, see left"),
}

ENTRA_ONLY: dict[str, str] = {
    "AppRoleAssignmentsComplex([appRoleAssignments])":
        "app role assignments are objects of the Entra tenant, which provision does not "
        "read. Map the role attribute of your source instead, for instance split(roles, ';') into a "
        "multi-valued target attribute.",
    "SingleAppRoleAssignment([appRoleAssignments])":
        "see AppRoleAssignmentsComplex; map a single role attribute of your source, or "
        "item(split(roles, ';'), 1).",
}
"""Entra functions with no provision equivalent, and what to do instead."""

SYNTAX: list[tuple[str, str, str]] = [
    ("[attributeName]", "attributeName", 'a name with spaces or dashes in double quotes: "cost center"'),
    ('"text"', "'text'", "Entra's \\\\ and \\\" inside text become \\ and \", a ' becomes \\'"),
    ('Switch([x], , "1", "a")', "switch(x, null, '1', 'a')", "an empty argument is null"),
    ("FunctionName(...)", "function_name(...)", "lower case, words joined by _ (see the next table)"),
    ('IIF([a] = "x", ...)', "iif(a == 'x', ...)", "= and <> are == and !="),
]
"""How Entra's expression syntax is written in provision's (JMESPath)."""


def replaces(name: str) -> str | None:
    """The Entra expression the function ``name`` replaces, or None (a JMESPath built-in)."""
    found = EQUIVALENTS.get(name)
    return None if found is None or found.entra == "(none)" else found.entra
