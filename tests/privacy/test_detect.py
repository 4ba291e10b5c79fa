"""Detection on the real analyzer: every entity type, the false-positive filter, bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tether.errors import InputError
from tether.privacy import SECRETS as SECRET_TYPES, PrivacyGuard, parse_config

SAMPLES = {
    "PERSON": ("Please forward this to Maria Gonzalez before noon.", "Maria Gonzalez"),
    "EMAIL_ADDRESS": ("Write to maria.gonzalez@example.org today.", "maria.gonzalez@example.org"),
    "PHONE_NUMBER": ("Call me on +1 (415) 555-0134 after six.", "+1 (415) 555-0134"),
    "CREDIT_CARD": ("My card 4111 1111 1111 1111 was charged twice.", "4111 1111 1111 1111"),
    "IBAN_CODE": ("Send it to GB82 WEST 1234 5698 7654 32 please.", "GB82 WEST 1234 5698 7654 32"),
    "IP_ADDRESS": ("The server at 192.168.14.20 is down.", "192.168.14.20"),
    "US_SSN": ("My SSN is 219-09-9999.", "219-09-9999"),
    "STREET_ADDRESS": ("I moved to 221B Baker Street last year.", "221B Baker Street"),
    "LOCATION": ("We are flying to Lisbon next week.", "Lisbon"),
    "DATE_OF_BIRTH": ("I was born on March 3, 1985 in a small town.", "March 3, 1985"),
    "ID_NUMBER": ("My passport number is X1234567, valid until 2031.", "X1234567"),
}

# Planted secrets: every one must be found (recall 1.0).
SECRETS = [
    ("API_KEY", "key: sk-proj-Q2x8LmN4pR7tV1wY3zA5bC6dE9fG0hJ2kL", "sk-proj-Q2x8LmN4pR7tV1wY3zA5bC6dE9fG0hJ2kL"),
    ("API_KEY", "AWS id AKIAIOSFODNN7EXAMPLE in the config", "AKIAIOSFODNN7EXAMPLE"),
    ("API_KEY", "token ghp_16C7e42F292c6912E7710c838347Ae178B4a set", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("API_KEY", "export STRIPE=sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("API_KEY", "slack xoxb-2048-1234567890-AbCdEfGhIjKlMnOp here", "xoxb-2048-1234567890-AbCdEfGhIjKlMnOp"),
    ("API_KEY", "socket mode uses xapp-1-A0123456789-1234567890123-0123456789abcdef0123456789abcdef now",
     "xapp-1-A0123456789-1234567890123-0123456789abcdef0123456789abcdef"),
    ("API_KEY", "refresh with xoxe-1-My0xLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkw please",
     "xoxe-1-My0xLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkw"),
    ("API_KEY", "bot token: xoxb 2048 1234567890 AbCdEfGhIjKlMnOp here", "xoxb 2048 1234567890 AbCdEfGhIjKlMnOp"),
    ("API_KEY", "slack xoxb_2048_1234567890_AbCdEfGhIjKlMnOp here", "xoxb_2048_1234567890_AbCdEfGhIjKlMnOp"),
    ("API_KEY", "slack xoxb.2048.1234567890.AbCdEfGhIjKlMnOp here", "xoxb.2048.1234567890.AbCdEfGhIjKlMnOp"),
    ("API_KEY", "app token xapp 1 A0123456789 1234567890123 0123456789abcdef0123456789abcdef",
     "xapp 1 A0123456789 1234567890123 0123456789abcdef0123456789abcdef"),
    ("API_KEY", "api_key = 'Zt8kP2mQ9vX4rL7w'", "Zt8kP2mQ9vX4rL7w"),
    ("API_KEY", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N"),
    ("PASSWORD", "password: hunter2!", "hunter2!"),
    ("PASSWORD", 'db_password="correct horse battery"', "correct horse battery"),
    ("PASSWORD", "Login with pwd=S3cr3t#2024 tomorrow", "S3cr3t#2024"),
    # in connection strings, in longer key names, with quotes or commas in the value
    ("PASSWORD", "DATABASE_URL=postgres://admin:S3cretPw@10.0.0.5:5432/app", "S3cretPw"),
    ("PASSWORD", "redis://:p4ssw0rdXyz@localhost:6379/0", "p4ssw0rdXyz"),
    ("PASSWORD", '{"userPassword": "hunter2", "id": 4}', "hunter2"),
    ("PASSWORD", "ROOTPASSWORD=Tr0ub4dor&3", "Tr0ub4dor&3"),
    ("PASSWORD", "password: my'dog99, ok?", "my'dog99"),
    ("PASSWORD", "pw: a,b,c,d,e9, then log in", "a,b,c,d,e9"),
    ("API_KEY", '{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}', "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("API_KEY", 'refreshToken: "abcDEF123456ghi"', "abcDEF123456ghi"),
    ("API_KEY", "Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l", "YWxhZGRpbjpvcGVuc2VzYW1l"),
    ("PASSWORD", "router login: admin, password Tr0ub4dor&3horse. thanks", "Tr0ub4dor&3horse"),
    ("PASSWORD", "my gmail password hunter2", "hunter2"),
    ("PASSWORD", "Password - x9!abc", "x9!abc"),
    ("PASSWORD", "the door PIN 4921", "4921"),
    ("PRIVATE_KEY", "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nP2/56wAAAi4AAAA3\n---- END SSH2 ENCRYPTED PRIVATE KEY ----",
     "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nP2/56wAAAi4AAAA3\n---- END SSH2 ENCRYPTED PRIVATE KEY ----"),
    ("PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----",
     "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY-----"),
    ("PRIVATE_KEY", "here: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA (truncated",
     "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA (truncated"),
    # in code, configs and command lines
    ("PASSWORD", "config['password'] = 'Winter2024!'", "Winter2024!"),
    ("API_KEY", 'os.environ["OPENAI_API_KEY"] = "abc123DEF456ghi789JKL"', "abc123DEF456ghi789JKL"),
    ("API_KEY", 'app.config["SECRET_KEY"] = "a8f5f167f44f4964e6c998dee827110c"', "a8f5f167f44f4964e6c998dee827110c"),
    ("PASSWORD", "<password>Winter2024!</password>", "Winter2024!"),
    ("API_KEY", "AccountName=acme;AccountKey=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg==;EndpointSuffix=core.windows.net",
     "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg=="),
    ("API_KEY", '{"authorization": "bearer abc123DEF456ghi789JKL"}', "abc123DEF456ghi789JKL"),
    ("API_KEY", "Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"),
    ("PASSWORD", "curl -u admin:S3cretPa55 https://api.example.com", "S3cretPa55"),
    ("PASSWORD", "mysql -u root -pS3cretPass mydb", "S3cretPass"),
    ("API_KEY", "NPM_TOKEN npm_abcdefghijklmnopqrstuvwxyz0123456789", "npm_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("API_KEY", "SG.abcdefghijklmnopqrstuv.ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg",
     "SG.abcdefghijklmnopqrstuv.ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg"),
    ("API_KEY", "post to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
     "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("API_KEY", "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe",
     "bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
    # hidden by zero-width or full-width characters
    ("API_KEY", "key sk-\u200bproj-abcdefghijklmnopqrstuvwx1234", "sk-\u200bproj-abcdefghijklmnopqrstuvwx1234"),
    ("PASSWORD", "password\uff1a Winter2024!", "Winter2024!"),
    # codes that open a door, a card's security code, a Wi-Fi key (found 2026-12-01)
    ("PASSWORD", "The gate code is 1357 and the key is under the mat.", "1357"),
    ("PASSWORD", "door code: 2291#", "2291#"),
    ("PASSWORD", "lockbox code 4455", "4455"),
    ("PASSWORD", "alarm PIN is 7734", "7734"),
    ("PASSWORD", "Passcode for the alarm is 7734.", "7734"),
    ("PASSWORD", "The code for the front door is 4-4-5-5.", "4-4-5-5"),
    ("PASSWORD", "the combination is 12-34-56", "12-34-56"),
    ("PASSWORD", "card 4111 1111 1111 1111 exp 09/27 cvv 123", "123"),
    ("PASSWORD", "CVC is 4821", "4821"),
    ("PASSWORD", "the wifi key is BlueMonkey77", "BlueMonkey77"),
    ("PASSWORD", "WPA2 passphrase: sunflower", "sunflower"),
    ("PASSWORD", "wifi: BlueMonkey77", "BlueMonkey77"),
]


@pytest.mark.parametrize(("text", "value"), [
    ("driver's license D1234-5678-9012", "D1234-5678-9012"),
    ("my national insurance number is QQ 12 34 56 C", "QQ 12 34 56 C"),
    ("tax ID 12-3456789, thanks", "12-3456789"),
    ("Aadhaar 2345 6789 0123", "2345 6789 0123"),
    ("Personnummer 19811228-9874", "19811228-9874"),
    ("medical record number 00123456", "00123456"),
    ("MRN: 00123456", "00123456"),
    ("member ID: ABC123456789", "ABC123456789"),
    ("policy number POL-2291-7781", "POL-2291-7781"),
    ("My NHS number is 943 476 5919", "943 476 5919"),
    ("Patient ID: 4471223", "4471223"),
])
def test_identity_and_account_numbers_named_by_their_cue(guard, text, value):
    assert value in _found(guard, text).get("ID_NUMBER", []), _found(guard, text)
    assert value not in guard.prepare(text, "private_cloud", session=guard.session()).require_payload()


@pytest.mark.parametrize("text", [
    "passport photo needed", "the tax ID is required", "passport 2026 trip", "policy number is on the card",
    "member since 2019", "Student 12 of 30", "customer 42 complained", "Policy 2.1 applies",
    "employee handbook v2.3.1", "our account has 12,500 followers", "insurance policy 2024-2025 renewal",
    "member 2019 cohort",
])
def test_a_cue_word_near_a_small_number_or_a_year_is_no_id(guard, text):
    assert "ID_NUMBER" not in _found(guard, text)


def _found(guard: PrivacyGuard, text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in guard.detect(text):
        out.setdefault(s.entity_type, []).append(s.text)
    return out


@pytest.mark.parametrize("entity", list(SAMPLES))
def test_each_personal_entity_type(guard, entity):
    text, value = SAMPLES[entity]
    assert value in _found(guard, text).get(entity, []), _found(guard, text)




@pytest.mark.parametrize(("entity", "text", "value"), SECRETS, ids=[f"{e}-{i}" for i, (e, *_x) in enumerate(SECRETS)])
def test_planted_secrets_are_found(guard, entity, text, value):
    assert value in _found(guard, text).get(entity, []), _found(guard, text)


@pytest.mark.parametrize(("entity", "text", "value"), [
    ("EMAIL_ADDRESS", "Unsubscribe: https://news.example.com/u?email=maria.gonzalez%40example.org&id=7",
     "maria.gonzalez%40example.org"),
    ("EMAIL_ADDRESS", "Write to maria.gonzalez(at)example.org", "maria.gonzalez(at)example.org"),
    ("EMAIL_ADDRESS", "Write to maria.gonzalez [at] example [dot] org", "maria.gonzalez [at] example [dot] org"),
    ("EMAIL_ADDRESS", "Write to maria.gonzalez @ example.org", "maria.gonzalez @ example.org"),
    ("EMAIL_ADDRESS", "Write to maria.gonzalez@\nexample.org", "maria.gonzalez@\nexample.org"),
    ("PERSON", "Book a call at https://calendly.com/maria-gonzalez/30min", "maria-gonzalez"),
    ("PERSON", "My profile: https://www.linkedin.com/in/maria-gonzalez-12345", "maria-gonzalez"),
    ("API_KEY", "Use my key sk-proj-abcdefghij\nklmnopqrstuvwxyz0123456789ABCD",
     "sk-proj-abcdefghij\nklmnopqrstuvwxyz0123456789ABCD"),
])
def test_addresses_and_keys_written_to_dodge_a_filter(guard, entity, text, value):
    """Percent-encoded, bracketed, spaced or line-wrapped emails, profile handles, wrapped keys."""
    assert value in _found(guard, text).get(entity, []), _found(guard, text)


@pytest.mark.parametrize(("entity", "text", "value"), [
    ("EMAIL_ADDRESS", "Mail bob@corp.local about it", "bob@corp.local"),
    ("EMAIL_ADDRESS", "cc alice.k@build.internal, thanks", "alice.k@build.internal"),
    ("EMAIL_ADDRESS", "ssh deploy@db01.prod.lan and restart", "deploy@db01.prod.lan"),
    ("EMAIL_ADDRESS", "my router is admin@router.home.arpa.", "admin@router.home.arpa"),
    ("IP_ADDRESS", "The printer is at 192.168.001.023 now.", "192.168.001.023"),
    ("STREET_ADDRESS", "I live at 42 Zorgvlietstraat, Leiden.", "42 Zorgvlietstraat"),
    ("STREET_ADDRESS", "Our address is: 17 Kolmikulma", "17 Kolmikulma"),
    ("STREET_ADDRESS", "Send it to 9 Fitjabraut please.", "9 Fitjabraut"),
    # the house number joins the street across one street word no pattern knows
    ("STREET_ADDRESS", "Bela Sisneros\n\n49368 R Poeta João Ruiz 1\n Apt. 940", "49368 R Poeta João Ruiz 1"),
    ("STREET_ADDRESS", "We'll meet at the hotel, 292 πλατεία Καραισκάκη 26, Athens", "292 πλατεία Καραισκάκη 26"),
    ("STREET_ADDRESS", "Čedomir N. Brkić lives at 49828 3 route de Lyon, IVRY-SUR-SEINE", "49828 3 route de Lyon"),
])
def test_values_presidio_does_not_validate(guard, entity, text, value):
    """Intranet domains (no public suffix), zero-padded IPs, a house number before an unknown street."""
    assert value in _found(guard, text).get(entity, []), _found(guard, text)


@pytest.mark.parametrize("text", ["Use icon@2x.png and npm i lodash@4.17.21 or react@next.",
                                  "Upgrade to v1.2.3.4 or 1.02.3.456 today."])
def test_file_names_and_versions_are_no_address(guard, text):
    assert _found(guard, text) == {}


@pytest.mark.parametrize(("entity", "text", "value"), [
    ("PERSON", "Link: https://shop.example.com/track?name=Zbigniew+Wojcik&order=7", "Zbigniew+Wojcik"),
    ("LOCATION", "https://maps.example.com/?q=pizza&city=K%C3%B3rnik", "K%C3%B3rnik"),
    ("PHONE_NUMBER", "https://example.com/cb?phone=%2B48+601+234+567&x=1", "%2B48+601+234+567"),
    ("PERSON", "https://crm.example.com/c?lastName=Wojcik", "Wojcik"),
])
def test_personal_values_in_a_url_query_are_found_by_their_field(guard, entity, text, value):
    start = text.index(value)
    assert any(s.entity_type == entity and s.start <= start and start + len(value) <= s.end
               for s in guard.detect(text)), _found(guard, text)


def test_url_query_values_that_are_no_personal_data_are_left_alone(guard):
    assert _found(guard, "https://example.com/files?name=report.pdf&page=2&city=&sort=name") == {}


# Found by red-teaming on 2026-12-01 (231 probes a user would paste): config secrets, IDs after
# cues the list lacked, plates, handles spelt from a name, numeric postcodes under their field.
@pytest.mark.parametrize(("entity", "text", "value"), [
    ("PASSWORD", '- name: DB_PASSWORD\n  value: "pr0d-Kat-2024"', "pr0d-Kat-2024"),
    ("PASSWORD", '{"env": [{"name": "API_TOKEN", "value": "abcd1234efgh"}]}', "abcd1234efgh"),
    ("PASSWORD", 'network={\n  ssid="home"\n  psk="kochamyburka77"\n}', "kochamyburka77"),
    ("PASSWORD", "requirepass Zaq12wsxCde3", "Zaq12wsxCde3"),
    ("PASSWORD", "marcin:$apr1$zYx8Qw1p$Lk3j9Hh2Gg7Ff5Dd4Ss1a0", "$apr1$zYx8Qw1p$Lk3j9Hh2Gg7Ff5Dd4Ss1a0"),
    ("PASSWORD", "SMTP_PASS=mysecret", "mysecret"),
    ("PASSWORD", "USER=admin\nPASS=mysecret\n", "mysecret"),
    ("ID_NUMBER", "my PAN is ABCPK1234F", "ABCPK1234F"),
    ("ID_NUMBER", "Staff ID: 12345678", "12345678"),
    ("ID_NUMBER", "EMP ID 004417", "004417"),
    ("ID_NUMBER", "NIP 5261040828", "5261040828"),
    ("ID_NUMBER", "Emirates ID 784-1990-1234567-1", "784-1990-1234567-1"),
    ("ID_NUMBER", '{"passportNumber": "P123456789", "name": "x"}', "P123456789"),
    ("ID_NUMBER", "passport_number: EA1234567", "EA1234567"),
    ("ID_NUMBER", "My car reg is AB12 CDE.", "AB12 CDE"),
    ("ID_NUMBER", "licence plate 7ABC123", "7ABC123"),
    ("ID_NUMBER", "rejestracja WX 4567K", "WX 4567K"),
    ("ID_NUMBER", "VIN WVWZZZAUZJW123456", "WVWZZZAUZJW123456"),
    ("ID_NUMBER", "my vehicle LND-482-AA collided with a danfo", "LND-482-AA"),
    ("ID_NUMBER", "Passenger: KOWALCZYK/PAWEL MR\nBooking ref: Q8ZK4M", "Q8ZK4M"),
    ("ID_NUMBER", "Check-in details: PNR 6YHQ3T, Seat 23A", "6YHQ3T"),
    ("ID_NUMBER", "E-ticket: 220-2345678901", "220-2345678901"),
    ("LOCATION", "zip: 94110", "94110"),
    ("LOCATION", '{"postalCode": "00-001"}', "00-001"),
    ("LOCATION", "Address: 12 MG Road, Bengaluru, Karnataka, PIN: 560001", "560001"),
    ("PERSON", "[09:21] @jakub.wrobel: on it", "jakub.wrobel"),
    ("PERSON", "login: anna.kowalska", "anna.kowalska"),
    ("PERSON", "Host db\n  User thanh.pham", "thanh.pham"),
    ("PERSON", "@kasia: who's on call?\n@oleksandr.bondarenko: me, cell if pager fails", "oleksandr.bondarenko"),
    ("PERSON", "[14:02] @józef_w: pushed the fix", "józef_w"),
])
def test_red_team_values(guard, entity, text, value):
    assert value in _found(guard, text).get(entity, []), _found(guard, text)


@pytest.mark.parametrize("text", ["Ryanair boarding pass: FR 1902 KRK-STN", "Pass: 2 zones", "Ski pass: 3 days, €120",
                                  "Address: 12 MG Road, Bengaluru, Karnataka, PIN: 560001"])
def test_tickets_and_indian_postcodes_are_no_secret(guard, text):
    """A request that names a travel pass or an Indian address's PIN code may leave the device."""
    assert not guard.prepare(text, "private_cloud", session=guard.session()).must_stay_on_device


@pytest.mark.parametrize("text", ["my card PIN is 4821", "bank app PIN code 482913", "pass: hunter2x",
                                  "- name: DB_PASSWORD\n  valueFrom:\n    secretKeyRef: {name: db, key: pw}"])
def test_pins_and_passwords_still_keep_a_request_on_the_device(guard, text):
    out = guard.prepare(text, "private_cloud", session=guard.session())
    assert out.must_stay_on_device == ("valueFrom" not in text), out


@pytest.mark.parametrize("text", ["const MAX_TOKENS = 4096", "see RFC 2616 and RFC 9110", "The plate is hot, 2 eggs",
                                  "The vehicle is red and the booking confirmation code was sent.",
                                  "see john.smith.txt and self.name and os.path.join", "echo $HOME and $1$ each"])
def test_code_and_prose_near_those_cues_is_left_alone(guard, text):
    assert _found(guard, text) == {}


@pytest.mark.parametrize("text", ["@here: deploy at five", "@timestamp: 2024-01-01T10:00:00Z", "@media screen {",
                                  "mail bob@example.org: fine", "@app.route('/'): the handler", "@channel: standup",
                                  "@root: restarted nginx", "@pytest.fixture\ndef db(): ..."])
def test_what_only_looks_like_a_chat_speaker_is_no_name(guard, text):
    assert "PERSON" not in _found(guard, text), _found(guard, text)


def test_a_number_before_a_street_joins_it_only_when_it_touches_it(guard):
    found = _found(guard, "Rooms 2 and 893 Via Leopardi 83; call 5551234567890 Hauptstraße 5")
    assert found["STREET_ADDRESS"] == ["893 Via Leopardi 83", "Hauptstraße 5"], found


def test_a_private_key_without_its_begin_line_is_still_a_key(guard):
    """A search chunk can start mid-key: its body lines and END line must keep it on the device."""
    body = "\n".join(("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" + "x" * 12)[:64] for _ in range(5))
    tail = f"{body}\n-----END PRIVATE KEY-----\nthanks"
    assert "PRIVATE_KEY" in _found(guard, tail)
    assert "PRIVATE_KEY" in _found(guard, f"notes\n{body}\nmore notes")


@pytest.mark.parametrize("text", ["We use sk-learn\nmodels and meet at 5 @ the office. Thanks @ team!",
                                  "pip install scikit-learn; see github.com/scikit-learn/scikit-learn",
                                  "Open https://x.com/home and https://www.facebook.com/groups/",
                                  "A token that starts with xoxb is a bot token and xapp 1 is an app-level one."])
def test_look_alikes_of_those_are_left_alone(guard, text):
    assert _found(guard, text) == {}


def test_spans_are_sorted_non_overlapping_and_exact(guard):
    text = " ".join(t for t, _ in SAMPLES.values())
    spans = guard.detect(text)
    assert spans
    for a, b in zip(spans, spans[1:]):
        assert a.end <= b.start
    assert all(text[s.start:s.end] == s.text for s in spans)


@pytest.mark.parametrize("text", [
    "What is my SSN and IBAN? Email me.",  # the small model tags "SSN" as ORG and more
    "Hi, please send the invoice by Email.",
    "Thanks! Phone me when you can.",
])
def test_small_model_false_positives_are_dropped(guard, text):
    assert guard.detect(text) == []


def test_filter_can_be_turned_off_to_measure_it(guard):
    raw = guard.detector.detect("Hi, please send the invoice by Email.", filter_false_positives=False)
    filtered = guard.detect("Hi, please send the invoice by Email.")
    assert len(filtered) <= len(raw)


def test_other_occurrences_of_a_detected_value_are_covered(guard):
    text = "Maria Gonzalez called. Later, Maria Gonzalez wrote again."
    assert [s.text for s in guard.detect(text)].count("Maria Gonzalez") == 2


@pytest.mark.parametrize(("text", "values"), [
    ("Patient: Okonkwo Adebayo. Notes: okonkwo adebayo reports pain.", ["Okonkwo Adebayo", "okonkwo adebayo"]),
    ("IBAN DE89370400440532013000; confirm de89370400440532013000",
     ["DE89370400440532013000", "de89370400440532013000"]),
    ("Reach jane.doe@gmail.com. Backup: _jane.doe@gmail.com_", ["jane.doe@gmail.com", "jane.doe@gmail.com"]),
])
def test_other_occurrences_in_another_case_or_in_markdown_are_covered(guard, text, values):
    spans = guard.detect(text)
    assert [s.text for s in spans if s.text.lower() == values[0].lower()] == values
    assert all(text[s.start:s.end] == s.text for s in spans)


def test_a_one_word_name_is_not_matched_in_lower_case(guard):
    text = "Will Smith said he will come. Will is late."
    assert [s.text for s in guard.detect(text)] == ["Will Smith", "Will"]


@pytest.mark.parametrize(("entity", "text", "value"), [
    ("CREDIT_CARD", "card: 4111\u00a01111\u00a01111\u00a01111", "4111\u00a01111\u00a01111\u00a01111"),
    ("IBAN_CODE", "IBAN DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000", "DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000"),
    ("PHONE_NUMBER", "phone: +33\u202f6\u202f12\u202f34\u202f56\u202f78", "+33\u202f6\u202f12\u202f34\u202f56\u202f78"),
    ("US_SSN", "SSN 536\u201122\u20111847", "536\u201122\u20111847"),
    ("CREDIT_CARD", "pay with 4012.8888.8888.1881 today", "4012.8888.8888.1881"),
    ("CREDIT_CARD", "card 4111\u200b1111\u200b1111\u200b1111", "4111\u200b1111\u200b1111\u200b1111"),
    ("CREDIT_CARD", "card \uff14\uff11\uff11\uff11 1111 1111 1111", "\uff14\uff11\uff11\uff11 1111 1111 1111"),
    ("EMAIL_ADDRESS", "mail jane.doe\u200b@gmail.com today", "jane.doe\u200b@gmail.com"),
])
def test_numbers_written_with_unicode_spaces_or_dashes(guard, entity, text, value):
    assert value in _found(guard, text).get(entity, []), _found(guard, text)


@pytest.mark.parametrize(("entity", "text", "value"), [
    ("API_KEY", "APIキーはsk-proj-abcdefghijklmnopqrstuvwxyz012345です", "sk-proj-abcdefghijklmnopqrstuvwxyz012345"),
    ("API_KEY", "キー\u200bsk-proj-abcdefghijklmnopqrstuvwxyz012345です", "sk-proj-abcdefghijklmnopqrstuvwxyz012345"),
    ("EMAIL_ADDRESS", "メールはtaro.yamada@example.jpです", "taro.yamada@example.jp"),
    ("IP_ADDRESS", "IPは203.0.113.45です", "203.0.113.45"),
    ("PHONE_NUMBER", "我的电话是13800138000。", "13800138000"),
    ("PHONE_NUMBER", "我的手机号是138 0013 8000，谢谢", "138 0013 8000"),
    ("CREDIT_CARD", "카드번호는4539148803436467입니다", "4539148803436467"),
    ("EMAIL_ADDRESS", "อีเมลsomchai.j@example.co.thค่ะ", "somchai.j@example.co.th"),
    ("PASSWORD", "密码是hunter2abc", "hunter2abc"),
    ("PASSWORD", "パスワード：hunter2abc。", "hunter2abc"),
    ("PASSWORD", "密码:abcdef，谢谢", "abcdef"),
    ("PASSWORD", "비밀번호는 hunter2abc입니다", "hunter2abc"),
])
def test_values_written_against_cjk_or_thai_letters(guard, entity, text, value):
    """These scripts use no spaces, so no word boundary separates the value from the letters."""
    assert value in _found(guard, text).get(entity, []), _found(guard, text)


def test_a_cjk_password_word_without_a_colon_needs_a_password_like_value(guard):
    assert "PASSWORD" not in _found(guard, "パスワードは変更しました")


def _precise(guard: PrivacyGuard, text: str) -> list[tuple[str, str]]:
    return [(s.entity_type, s.text) for s in guard.detect(text, tier="device")]


@pytest.mark.parametrize(("text", "expected"), [
    # A possessive is not part of the name, and the name is found through it.
    ("As promised, here's Marina's address:", ("PERSON", "Marina")),
    # A known first name opening a sentence.
    ("Samantha is from Visualdod LLC", ("PERSON", "Samantha")),
    ("What's your last name? Smith", ("PERSON", "Smith")),
    ("Her maiden name is van Bokhorst", ("PERSON", "van Bokhorst")),
    # Listed with a detected person: a person too.
    ("Is there a better pop song? Caird and Jones were precision engineers.", ("PERSON", "Caird")),
    ("They had 3: Sulimat, Brian and Susan.", ("PERSON", "Sulimat")),
    # The email spells the name in the other order, or without its accents.
    ("Mozes Tury\nE-mail: TuryMozes@fleckens.hu", ("PERSON", "Mozes Tury")),
    ("Vojtěch Přerost\nE-mail: VojtechPrerost@superrito.com", ("PERSON", "Vojtěch Přerost")),
    # The small model runs a name into the flat number; the name stays a name.
    ("Dr. Verena Schuur Apt. 961", ("PERSON", "Verena Schuur")),
    ("Please use the corner of Escada Feijão 41 and Bermúdez Roads.",
     ("STREET_ADDRESS", "Escada Feijão 41 and Bermúdez Roads")),
    ("We'll meet at 893 Via Leopardi 83, Lirone", ("STREET_ADDRESS", "893 Via Leopardi 83")),
    ("Call +1-378-995-8604x902 after six.", ("PHONE_NUMBER", "+1-378-995-8604x902")),
    ("Margrethe Sørensen\n\nDot Lake\nUnited States", ("LOCATION", "United States")),  # short forms of countries
    ("Saber Mailly\n\nArtilleros\nUruguay", ("LOCATION", "Artilleros")),  # addressee, town, country
])
def test_precise_rules(guard, text, expected):
    assert expected in _precise(guard, text), _precise(guard, text)


@pytest.mark.parametrize(("text", "expected"), [
    ("Date: 2024-10-23 06:44:03.566113", []),  # seconds of a timestamp are no phone number
    ("Translate this into French for our React app.", []),  # languages and software are no people
    ("Hi Anna, I'm contacting you about a problem.", [("PERSON", "Anna")]),  # "I'm" is not listed with her
    ("Thanks,\n\nGreat work\nUruguay", [("LOCATION", "Uruguay")]),  # no addressee above: no town
])
def test_precise_rules_do_not_overreach(guard, text, expected):
    assert _precise(guard, text) == expected


def test_user_recognizers_deny_lists_and_allow_list():
    cfg = parse_config({"detection": {
        "recognizers": [{"entity": "EMPLOYEE_ID", "patterns": [{"regex": r"\bEMP-\d{6}\b", "score": 0.9}]},
                        {"entity": "BADGE", "patterns": [{"regex": r"badge #(?P<v>\d{4})", "group": "v"}]}],
        "deny_lists": [{"entity": "PROJECT", "terms": ["Blue Harbor"]}],
        "allow_list": ["Lisbon"],
    }})
    guard = PrivacyGuard(cfg)
    found = _found(guard, "EMP-123456 badge #4821 works on blue harbor from Lisbon.")
    assert found["EMPLOYEE_ID"] == ["EMP-123456"]
    assert found["BADGE"] == ["4821"]
    assert found["PROJECT"] == ["blue harbor"]
    assert "LOCATION" not in found


def test_python_recognizers_can_be_added():
    from presidio_analyzer import Pattern, PatternRecognizer

    rec = PatternRecognizer(supported_entity="TICKET", patterns=[Pattern("t", r"\bTCK-\d+\b", 0.9)])
    cfg = parse_config({"policy": {}})
    guard = PrivacyGuard(cfg, recognizers=[rec])
    assert _found(guard, "See TCK-991 for details.")["TICKET"] == ["TCK-991"]


class TestBadInput:
    def test_empty_and_blank(self, guard):
        assert guard.detect("") == []
        assert guard.detect(" \n\t ") == []
        out = guard.scan("")
        assert [t.payload for t in out.tiers] == ["", "", ""]

    def test_invalid_utf8_bytes(self, guard):
        with pytest.raises(InputError, match="not valid UTF-8"):
            guard.detect("café".encode("latin-1"))

    def test_unpaired_surrogate(self, guard):
        with pytest.raises(InputError, match="not valid Unicode"):
            guard.detect("hello \ud800 world")

    def test_not_text(self, guard):
        with pytest.raises(InputError, match="expected text"):
            guard.detect(42)  # type: ignore[arg-type]

    def test_mixed_scripts_and_emoji_keep_offsets(self, guard):
        text = "Привет 👋🏽 — 東京で会いましょう. Mail 📧 maria.gonzalez@example.org or call +44 20 7946 0958 🙂"
        spans = guard.detect(text)
        assert all(text[s.start:s.end] == s.text for s in spans)
        found = {s.entity_type: s.text for s in spans}
        assert found["EMAIL_ADDRESS"] == "maria.gonzalez@example.org"
        assert found["PHONE_NUMBER"] == "+44 20 7946 0958"

    def test_one_megabyte(self, guard):
        filler = "The weather report said it would rain again in the afternoon. " * 400
        key = "-----BEGIN PRIVATE KEY-----\n" + "MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n" * 60 + \
              "-----END PRIVATE KEY-----"
        parts = []
        while sum(map(len, parts)) < 1_000_000:
            parts.append(filler)
        mid = len(parts) // 2
        parts.insert(mid, f" Contact jane.roe@example.com now. {key} ")
        text = "".join(parts)
        assert len(text) >= 1_000_000
        spans = guard.detect(text)
        kinds = {(s.entity_type, s.text) for s in spans}
        assert ("EMAIL_ADDRESS", "jane.roe@example.com") in kinds
        assert ("PRIVATE_KEY", key) in kinds  # a 3 kB block across the chunking, still one span
        assert guard.prepare(text, "private_cloud", session=guard.session()).must_stay_on_device


def test_no_network_at_runtime(tmp_path):
    """Load the analyzer and scan an email in a process whose sockets cannot connect."""
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\nsocket.getaddrinfo = refuse\n"
        "from tether.privacy import PrivacyGuard\n"
        "spans = PrivacyGuard().detect('mail bob.smith@example.co.uk or call +1 212 555 0199')\n"
        "print(sorted(s.entity_type for s in spans))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['EMAIL_ADDRESS', 'PHONE_NUMBER']"
    assert "network used" not in proc.stderr


def test_presidio_is_imported_without_transformers():
    """Presidio probes for transformers (1–2 s to import) for parts Tether never uses; where it is
    installed it stays unimported, and a later import of it still works."""
    import importlib.util

    code = ("import sys\nfrom tether.privacy import PrivacyGuard\nPrivacyGuard().detect('Anna Kowalska')\n"
            "print('transformers' in sys.modules)\n"
            "import importlib.util\nif importlib.util.find_spec('transformers'):\n"
            "    from transformers import pipeline\n    print(callable(pipeline))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert lines[0] == "False"
    assert lines[1:] == (["True"] if importlib.util.find_spec("transformers") else [])


@pytest.mark.parametrize("needle, text", [
    ("Ann", "Ann, Anna and ann met Ann_x and Ann."),
    ("Ann", "AnnAnn Ann"),
    ("aa", "aaa aa aa"),
    ("José", "José's friend Josélito and José"),
    ("+1 555", "call +1 555-0100 or +1 555"),
    ("Ann", ""),
    ("Zoë", "Zoë9 Zoë-Zoë ZoëZoë Zoë"),
    ("jane@x.org", "mail _jane@x.org_ or jane@x.org_2"),
])
def test_whole_word_occurrences_match_the_regex_they_replace(needle, text):
    import re

    from tether.privacy.detect import whole_word_occurrences

    expected = [m.span() for m in re.finditer(rf"(?<![^\W_]){re.escape(needle)}(?![^\W_])", text)]
    assert list(whole_word_occurrences(needle, text)) == expected


@pytest.mark.parametrize("text", ["Click the password reset link", "Your password must contain 8+ characters",
                                  "Use a password manager.", "pin it to the board", "Password (optional)",
                                  "a password-protected file", "The token is in the vault.",
                                  "A bearer of bad news arrived.", "Please pass the salt.",
                                  "door number 12", "error code 4012", "Use HTTP status code 404.", "wifi: on",
                                  "wifi: Eduroam", "the wifi is down", "the security code review is on Monday",
                                  "Postcode for the office is 10115", "the combination of factors is complex",
                                  "Gate 12 at terminal 3", "Meet at the door at 1500"])
def test_password_words_in_prose_are_no_secret(guard, text):
    assert not [s for s in guard.detect(text) if s.entity_type in ("PASSWORD", "API_KEY")]


# Found by red-teaming the default policy (2026-11-30): everyday ways of writing personal data
# and secrets that used to reach the private cloud in plaintext.
@pytest.mark.parametrize(("text", "value"), [
    ("the password for the router is zebra!Falls", "zebra!Falls"),
    ("Password for the wifi: Falcon#2291", "Falcon#2291"),
    ("fyi my password's Tr0ub4dor&3", "Tr0ub4dor&3"),
    ("Password — Tr0ub4dor&3", "Tr0ub4dor&3"),
    ("ssh in as admin pw hunter2 then sudo", "hunter2"),
    ("creds are admin / Summer2024! for the staging box", "Summer2024!"),
    ("login: admin:Qwerty!234", "Qwerty!234"),
    ("docker login -u myuser -p MyP@ss123 registry.example.com", "MyP@ss123"),
    ("sshpass -p 'P@ss1234' ssh deploy@10.1.2.3", "P@ss1234"),
    ('r = requests.get(url, auth=("admin", "S3cret!99"))', "S3cret!99"),
    ("auth = HTTPBasicAuth('svc_user', 'pa55Word!x')", "pa55Word!x"),
    ('password = """Tr0ub4dor&3"""', "Tr0ub4dor&3"),
    ("username,password,email\njdoe,Summer2024!,jdoe@gmail.com", "Summer2024!"),
    ("| user | password |\n|---|---|\n| admin | Pa$$w0rd!7 |", "Pa$$w0rd!7"),
    ("db.internal:5432:prod:admin:Sup3rS3cret", "Sup3rS3cret"),
    ("Passwort: Geheim!123", "Geheim!123"),
    ("MINIO_ACCESS_KEY=AKfj39Dkq02LzPq", "AKfj39Dkq02LzPq"),
    ("https://api.openweathermap.org/data/2.5/weather?q=London&appid=3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
     "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"),
    ("fetch('https://example.com/api?key=9Xk2LmQ8pR4tV7wZ1aB3')", "9Xk2LmQ8pR4tV7wZ1aB3"),
    ('client.run("MTE2NTk4NjY2NjQ5MjQ1NzAyNA.GxYz12.abcdefghijklmnopqrstuvwxyz0123456789")',
     "MTE2NTk4NjY2NjQ5MjQ1NzAyNA.GxYz12.abcdefghijklmnopqrstuvwxyz0123456789"),
    ("MAILGUN_KEY=key-3ax6xnjp29jd6fds4gc373sgvjxteol0", "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"),
    ("wallet private key: 4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
     "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"),
    ('{"id":7,"first":"Olga","last":"Ivanova","city":"Kazan"}', "Ivanova"),
    ('{"id":7,"first":"Olga","last":"Ivanova","city":"Kazan"}', "Kazan"),
    ('{"lastName":"Kowalczyk"}', "Kowalczyk"),
    ("owner: Szczepanski", "Szczepanski"),
    ("b-day: march 3rd, 1990", "march 3rd, 1990"),
    ("dob=19900303", "19900303"),
    ('{"name":"A. Petrova","dateOfBirth":"03/03/90"}', "03/03/90"),
    ("Please call Wei at 138 0013 8000 tomorrow.", "138 0013 8000"),
    ("her extension is 555-1234", "555-1234"),
    ("deliver to 55 maple avenue please", "55 maple avenue"),
    ("Flat 3, 27 Wellington Road, Leeds LS1 4AB", "LS1 4AB"),
    ("Ship to 742 Evergreen Terrace, Springfield, IL 62704", "62704"),
])
def test_everyday_forms_are_covered(guard, text, value):
    _assert_covered(guard, text, value)


def _assert_covered(guard: PrivacyGuard, text: str, value: str) -> None:
    spans = guard.detect(text)
    start = text.index(value)
    assert any(s.start <= start and start + len(value) <= s.end for s in spans), \
        (text, [(s.entity_type, s.text) for s in spans])


@pytest.mark.parametrize(("text", "value"), [
    # a birth date with a two-digit year, or written in another language after its cue
    ("I'm Olamide, 28, born 19 Oct 95. Is my horoscope Libra?", "19 Oct 95"),
    ("DOB 3 Feb 01, please update the form", "3 Feb 01"),
    ("Fecha de nacimiento: 7 de julio de 1994. Nombre: Itziar.", "7 de julio de 1994"),
    ("nacido el 14 de febrero de 1987 en Bilbao", "14 de febrero de 1987"),
    ("Ich bin geboren am 2. November 1979 in Köln.", "2. November 1979"),
    ("Il est né le 14 mars 1988 à Lyon.", "14 mars 1988"),
    ("data urodzenia: 5 maja 1990", "5 maja 1990"),
    ("nata il 3 maggio 1985 a Torino", "3 maggio 1985"),
    ("geboortedatum: 12 mei 1990", "12 mei 1990"),
    # phones after a cue in another language, and a phone column named in Spanish
    ("Zadzwoń do mnie: 512-345-678 albo na stacjonarny (22) 628 41 92.", "512-345-678"),
    ("Zadzwoń do mnie: 512-345-678 albo na stacjonarny (22) 628 41 92.", "(22) 628 41 92"),
    ("Tel. 22 628 41 92 w. 115 (sekretariat), kom. 600 100 200", "600 100 200"),
    ("Llámame al 612 34 56 78 mañana.", "612 34 56 78"),
    ("id;nombre;apellidos;telefono;ciudad\n1;Lucía;Fernández Gómez;612345678;Zaragoza", "612345678"),
    # postcodes: after their name in any language, and Irish, Canadian and Dutch ones on an address line
    ("she gave her postcode D02 X285 over the phone", "D02 X285"),
    ("Eircode: A65 F4E2", "A65 F4E2"),
    ("Mail: 24 Sussex Drive, Ottawa ON K1A 0B1", "K1A 0B1"),
    ("Send it to Herengracht 1, 1012 AB Amsterdam please", "1012 AB"),
    ("her zip is 94110 now", "94110"),
    ("PLZ 10115, Berlin", "10115"),
    # a number caught in part takes its whole run of digit groups
    ("konto 61 1090 1014 0000 0712 1981 2874", "61 1090 1014 0000 0712 1981 2874"),
    ("Reisender: Herr Jürgen Oberhäuser, BahnCard 7081 4112 3456 7890", "7081 4112 3456 7890"),
    # UPI payment addresses
    ("bro send me ur UPI id — vikram.c@okhdfcbank", "vikram.c@okhdfcbank"),
    ("vpa ramesh99@ybl", "ramesh99@ybl"),
    ("UPI: anita.sharma@oksbi", "anita.sharma@oksbi"),
    # logins under a field that names them
    ("user_id,username,full_name\n1001,jbrown,Jamal Brown\n1002,mkaur,Manpreet Kaur", "jbrown"),
    ('{"username": "m.wisniewski", "role": "dev"}', "m.wisniewski"),
    ("[github]\n    login = oadeyemij", "oadeyemij"),
    ("sshd[2231]: Accepted publickey for mwisniewski from 83.24.117.9 port 50988 ssh2", "mwisniewski"),
    ("pam_unix(sshd:session): session opened for user kasia(uid=1000)", "kasia"),
    # an initial and a lower-case surname, as minutes are typed
    ("disciplinary hearing — present: k. nowicka (HR), jarek pawlak (employee)", "k. nowicka"),
    # Polish estates and avenues, with the flat number
    ("Write a thank-you note for hosting us at os. Kalinowe 14/27 in Kraków.", "os. Kalinowe 14/27"),
    ("al. Jerozolimskie 65/79, Warszawa", "al. Jerozolimskie 65/79"),
    # a passport's issuing country between its cue and its number
    ("Can you check if my name matches? Passport: POL, No. EA1234567, Surname: WÓJCIK", "EA1234567"),
    # a Polish account number (an IBAN without its "PL"), by its checksum
    ("rachunek 27 1140 2004 0000 3002 0135 5387", "27 1140 2004 0000 3002 0135 5387"),
])
def test_forms_from_other_countries_are_covered(guard, text, value):
    _assert_covered(guard, text, value)


@pytest.mark.parametrize(("text", "expected"), [
    ("zip 12 files into one archive", []),
    ("as shown by Jones et al. Nature 2020, 5", [("PERSON", "Jones")]),
    ("see p. 12 and fig. 3, i.e. the table", []),
    ("user: postgres\nusername: admin\nLogin: failed", []),  # system accounts and words are no login
    ("sshd[7]: Failed password for invalid user admin from 10.0.0.5 port 22", [("IP_ADDRESS", "10.0.0.5")]),
    ("Order 1234 5678 shipped.", []),
    ("The code A1B 2C3 is a test fixture.", []),
    ("We shipped 2024 AD units.", []),
    ("The meeting is on 19 Oct at 10.", []),
    ("Geburtsdatum: 03.04.1981", [("DATE_OF_BIRTH", "03.04.1981")]),  # the label is no name
    ("Telefon: 030 1234567", [("PHONE_NUMBER", "030 1234567")]),
    ("Call me on 555 0134 at 5.", [("PHONE_NUMBER", "555 0134")]),
    ("My card 4111 1111 1111 1111 12/25 expires", [("CREDIT_CARD", "4111 1111 1111 1111")]),
    ("email me at joe@ybl.com", [("EMAIL_ADDRESS", "joe@ybl.com")]),
])
def test_those_rules_stop_where_the_value_does(guard, text, expected):
    assert [(s.entity_type, s.text) for s in guard.detect(text)] == expected


@pytest.mark.parametrize("text", [
    "class LoginIn(BaseModel):\n    username: str\n    password: str",
    "def login(username: str, password: str) -> bool:",
    "interface User { email: string; password: string; }",
    "if password == confirm_password:\n    save()",
    "password = input('Password: ')",
    "password = getpass.getpass()",
    "password = os.environ['DB_PASSWORD']",
    "const db = new Client({ user: 'app', password: process.env.DB_PASSWORD })",
    "const config = { apiKey: process.env.REACT_APP_FIREBASE_API_KEY };",
    "app.secret_key = settings.SECRET_KEY",
    "token = AuthToken.objects.create(user=user)",
    "pwd = os.getcwd()\nprint(pwd)",
    "import RPi.GPIO as GPIO\nLED_PIN = 18\nGPIO.setup(LED_PIN, GPIO.OUT)",
    "pin = 13  # onboard LED",
    "user.password = make_password(raw_password)",
    "password: ${DB_PASSWORD}\nuser: ${DB_USER}",
    "tokenizer = AutoTokenizer.from_pretrained('bert-base-uncased')",
    "curl -u $USER:$TOKEN https://api.example.com",
    "Can you pin 2024 as the year in the chart title?",
    "First: preheat the oven. Last: let it cool.",
])
def test_code_that_handles_secrets_is_not_a_secret(guard, text):
    """A question about code that names a password must not be held on the device as if it held one."""
    assert [s.text for s in guard.detect(text) if s.entity_type in SECRET_TYPES] == []
    assert not [s.text for s in guard.detect(text) if s.entity_type == "PERSON" and "oven" in s.text]


@pytest.mark.parametrize("text", ["Manager: approve the request", "Contact: support team", "Owner: the platform team"])
def test_a_sentence_after_a_person_label_is_no_name(guard, text):
    assert [s.text for s in guard.detect(text) if s.entity_type == "PERSON"] == []


# Text built to make a backtracking regex quadratic (or worse): 80 KB of each used to take from
# tens of seconds ("a.b-" against the obfuscated-email patterns: 169 s) to hours ("docker login").
ADVERSARIAL = {
    "email local part": "a.b-" * 20_000,
    "blank lines after an @": "a @" + "\n" * 80_000 + "x",
    "spaces in a bracketed domain": "a(at)a" + " " * 80_000 + "x",
    "a long URL scheme": "a.b-" * 10_000 + "://" + "a.b-" * 10_000,
    "key prefixes": "sk-" * 26_000 + "\n",
    "env names": "A_" * 40_000 + "=",
    "street words": "Aa-" * 26_000,
    "command lines": "docker login " * 6_000 + "mysql sshpass redis-cli " * 1_000,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_the_recognizers_take_linear_time_on_adversarial_text(name):
    import time

    from tether.privacy.recognizers import RegexRecognizer, builtin_recognizers

    text = ADVERSARIAL[name]
    recognizers = [r for r in builtin_recognizers() if isinstance(r, RegexRecognizer)]
    start = time.perf_counter()
    found = [(r.entity_type, r.start, r.end) for rec in recognizers for r in rec.analyze(text, [])]
    assert time.perf_counter() - start < 5, name  # linear: well under a second on a laptop
    assert {t for t, *_ in found} == ({"API_KEY"} if name == "key prefixes" else set()), found  # "sk-sk-…"


def test_a_long_run_of_spaces_after_a_name_is_read_once():
    import time

    from tether.privacy.recognizers import listed_names

    text = "Maria" + " " * 80_000 + "and Jane"
    start = time.perf_counter()
    assert listed_names(text, [("PERSON", 0, 5)]) == [(len(text) - 4, len(text))]
    assert time.perf_counter() - start < 5


NOTIFICATIONS = ("Mail notifications:\n"
                 "Sun 16:20 Katie Brown [Re: Client Meeting]: I've drafted the email. Thanks, Katie\n"
                 "Sun 17:00 Emma Johnson [Re: Client Meeting]: Hi Katie, the draft looks good. Best, Emma\n"
                 "Calendar notifications:\n"
                 "Wed 09:45 Team Sync: Wednesday 15 May, 10:00-11:00 at Conference Room B. Weekly team sync.\n"
                 "Thu 08:45 Board Meeting: Thursday 23 May, 09:00-12:00 at Main Conference Hall. Quarterly board meeting.")


def test_no_detection_runs_across_a_line_or_into_the_next_sentence(guard):
    spans = guard.detect(NOTIFICATIONS, tier="private_cloud")
    assert not [s.text for s in spans if "\n" in s.text or ". " in s.text]
    found = _found(guard, NOTIFICATIONS)
    assert {"Katie Brown", "Katie", "Emma Johnson", "Emma"} <= set(found["PERSON"])
    assert not {"Room B", "Weekly", "Sun", "Quarterly"} & {w for t in found["PERSON"] for w in t.split()}
    # what leaves keeps every line and each line's opening day
    out = guard.prepare(NOTIFICATIONS, "private_cloud", session=guard.session()).require_payload()
    assert [ln.split()[0] for ln in out.splitlines()] == [ln.split()[0] for ln in NOTIFICATIONS.splitlines()]
    assert "Katie" not in out and "Emma" not in out


@pytest.mark.parametrize(("text", "name"), [("Pertti M Palander wrote back.", "Pertti M Palander"),
                                            ("Ask Zeliha I. Sultygov about it.", "Zeliha I. Sultygov"),
                                            ("Signed: J. R. Tolkien", "J. R. Tolkien")])
def test_names_with_initials_still_run_over_the_initial(guard, text, name):
    assert name in _found(guard, text).get("PERSON", []), _found(guard, text)


def test_titles_and_everyday_words_in_some_name_list_are_no_names(guard):
    text = "Sat 09:45 Doctor Appointment: Saturday 25 May at City Hospital.\nTue 17:45 Yoga Class: Tuesday 14 May."
    assert "PERSON" not in _found(guard, text), _found(guard, text)
    # the name after a title is still one
    for text, name in [("Doctor Okonkwo will see you at 10.", "Okonkwo"), ("Ask Captain Marisol Ybarra.", "Marisol Ybarra")]:
        assert any(name in t for t in _found(guard, text).get("PERSON", [])), _found(guard, text)


def test_kin_payment_and_event_words_are_no_person_or_place(guard):
    """Seen in the notification stacks sent to the cloud: "Family <LOCATION_1>" came back as
    "Family reunion at Reunion", "<LOCATION_1> sent: €50.00 … <LOCATION_2>" as "Bank sent €50.00
    to Spotify Premium twice from Payment"."""
    text = ("Calendar notifications:\nFamily Reunion: Saturday 01 June at Grandma's House. Annual family reunion.\n"
            "Payment sent: €50.00 sent to SE3550000000054910000003: Spotify Premium")
    found = {(s.entity_type, s.text) for s in guard.detect(text)}
    assert not found & {("LOCATION", "Reunion"), ("PERSON", "Grandma"), ("LOCATION", "Payment"),
                        ("LOCATION", "Spotify Premium")}, found
    assert ("IBAN_CODE", "SE3550000000054910000003") in found
    # a name next to those words is still one
    names = {s.text for s in guard.detect("Mark Payne sent the refund to Grandma Rose Miller.") if s.entity_type == "PERSON"}
    assert "Mark Payne" in names and any("Rose Miller" in n for n in names), names


def test_a_greeting_to_a_team_or_a_role_and_a_hyphenated_everyday_word_are_no_names(guard):
    """Seen in the mail threads the notification cascade sends away: "Hi Team", "Dear Client",
    "Best regards, Support Team" and the subject "Meeting Follow-up" became placeholders."""
    text = ("Julie Williams [Re: Client Meeting Follow-up]: Hi Team, The email looks good. Thanks, Julie\n"
            "Emma Johnson [Meeting Follow-up]: Dear Client, Thank you for meeting with us today.\n"
            "Support [Re: Tech Issue]: Hi Emma, we are on it. Best regards, Support Team\n"
            "Streaming Service [Receipt]: Thank you. Best regards, Streaming Service Team")
    found = {s.text for s in guard.detect(text) if s.entity_type == "PERSON"}
    assert not found & {"Team", "Client", "Follow-up", "Support", "Support Team", "Streaming", "Streaming Service"}, found
    assert {"Julie Williams", "Emma Johnson", "Julie", "Emma"} <= found, found
    # a name after a greeting is still one, an everyday word after a title too, and so is a
    # hyphenated name
    for text, name in [("Hi Will, are you in?", "Will"), ("Thanks, Rose", "Rose"), ("Dear Mr Happy, welcome.", "Happy"),
                       ("Dear Zorblat, welcome.", "Zorblat"), ("Name: Bars Sinko", "Bars Sinko"),
                       ("Ask Anna-Lena Kowalczyk-Brandt.", "Anna-Lena Kowalczyk-Brandt")]:
        assert any(name in t for t in _found(guard, text).get("PERSON", [])), (text, _found(guard, text))
