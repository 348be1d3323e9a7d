import ssl

import pytest
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from streams.settings import Settings


def test_flags_win_over_environment() -> None:
    env = {"WAIVER_BROKER": "kafka://k:1", "WAIVER_PARTITIONS": "12",
           "WAIVER_SESSION_TIMEOUT": "7.5", "WAIVER_API_TOKEN": "s3cret"}
    settings = Settings.from_env(env, partitions=4)
    assert (settings.broker, settings.partitions, settings.session_timeout) == ("kafka://k:1", 4,
                                                                                7.5)
    assert settings.bootstrap == "k:1"
    assert "s3cret" not in repr(settings)
    with pytest.raises(ValueError, match="WAIVER_PARTITIONS"):
        Settings.from_env({"WAIVER_PARTITIONS": "many"})


def test_commit_interval_follows_the_guarantee_unless_set() -> None:
    assert Settings(processing_guarantee="exactly_once").commit_interval == 0.1
    assert Settings(processing_guarantee="at_least_once").commit_interval == 2.8
    settings = Settings.from_env({"WAIVER_COMMIT_INTERVAL_MS": "500",
                                  "WAIVER_PROCESSING_GUARANTEE": "exactly_once"})
    assert settings.commit_interval_ms == 500.0 and settings.commit_interval == 0.5
    with pytest.raises(ValueError, match="WAIVER_COMMIT_INTERVAL_MS"):
        Settings.from_env({"WAIVER_COMMIT_INTERVAL_MS": "soon"})


def test_compression_reaches_the_producers_and_reads_back() -> None:
    from streams.app import Pipeline

    alo = "at_least_once"
    app = Pipeline(Settings(processing_guarantee=alo, topic_prefix="unit-zstd.",
                            compression="zstd")).app
    assert app.conf.producer_compression_type == "zstd"
    plain = Pipeline(Settings(processing_guarantee=alo, topic_prefix="unit-plain.")).app
    assert plain.conf.producer_compression_type is None
    # The codec is installed: a batch as the producer builds it decodes to its records.
    batch = DefaultRecordBatchBuilder(magic=2, compression_type=DefaultRecordBatch.CODEC_ZSTD,
                                      is_transactional=0, producer_id=-1, producer_epoch=-1,
                                      base_sequence=-1, batch_size=1 << 20)
    values = [f"{i} 고객님께 환급을 안내해 드립니다".encode() * 20 for i in range(50)]
    for i, value in enumerate(values):
        batch.append(i, timestamp=None, key=b"C1", value=value, headers=[])
    data = batch.build()
    assert len(data) < sum(map(len, values)) / 5
    assert [record.value for record in DefaultRecordBatch(data)] == values
    with pytest.raises(ValueError, match="WAIVER_COMPRESSION: 'brotli'"):
        Settings.from_env({"WAIVER_COMPRESSION": "brotli"})


def test_plaintext_needs_no_credentials() -> None:
    assert Settings().credentials() is None
    assert Settings().client_options() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_reaches_the_kafka_clients() -> None:
    settings = Settings.from_env({
        "WAIVER_SECURITY_PROTOCOL": "SASL_SSL", "WAIVER_SASL_MECHANISM": "SCRAM-SHA-512",
        "WAIVER_SASL_USERNAME": "svc-waiver", "WAIVER_SASL_PASSWORD": "pw"})
    options = settings.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc-waiver",
                                                                                "pw")
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "pw" not in repr(settings)


def test_sasl_plaintext_and_ssl_only() -> None:
    plain = Settings(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    assert plain.client_options()["security_protocol"] == "SASL_PLAINTEXT"
    assert plain.client_options()["ssl_context"] is None
    tls = Settings(security_protocol="SSL").client_options()
    assert tls["security_protocol"] == "SSL" and isinstance(tls["ssl_context"], ssl.SSLContext)


def test_bad_security_settings_are_named() -> None:
    with pytest.raises(ValueError, match="WAIVER_SASL_USERNAME"):
        Settings(security_protocol="SASL_SSL").credentials()
    with pytest.raises(ValueError, match="WAIVER_SECURITY_PROTOCOL"):
        Settings(security_protocol="KERBEROS-ISH").credentials()


def test_faust_app_gets_the_credentials() -> None:
    from streams.app import Pipeline

    settings = Settings(processing_guarantee="at_least_once", security_protocol="SASL_PLAINTEXT",
                        sasl_username="u",
                        sasl_password="p", topic_prefix="unit.")
    app = Pipeline(settings).app
    assert app.conf.broker_credentials.username == "u"


def test_changelog_records_written_by_hand_decode_like_faust_s_own() -> None:
    """streams/writer.py encodes table changes itself under exactly-once."""
    from streams.app import Pipeline

    pipeline = Pipeline(Settings(processing_guarantee="at_least_once", topic_prefix="unit2."))
    for table, key, value in ((pipeline.customers, "C1", b'{"customer_id":"C1","partition":2}'),
                              (pipeline.rounds_done, "3", {"1": {"sent": 5}})):
        serializers = pipeline.app.serializers
        raw_key = serializers.dumps_key(table.key_type, key, serializer=table.key_serializer)
        raw_value = serializers.dumps_value(table.value_type, value,
                                            serializer=table.value_serializer)
        assert serializers.loads_key(table.key_type, raw_key,
                                     serializer=table.key_serializer) == key
        assert serializers.loads_value(table.value_type, raw_value,
                                       serializer=table.value_serializer) == value
