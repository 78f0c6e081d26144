import pytest

from core.settings import SettingsError, load_settings


def test_defaults_are_the_embedded_ones(tmp_path):
    s = load_settings(AIOPS_DATA_DIR=tmp_path)
    assert s.API_HOST == "0.0.0.0" and s.API_PORT == 8000 and s.OPENAI_MODEL == "gpt-4.1-mini"
    assert s.OLLAMA_MODEL == "llama3.2" and s.ENABLE_LLM_FALLBACK and s.ENABLE_CACHING
    assert (s.CACHE_TTL_ANALYSIS, s.CACHE_TTL_PLAYBOOK, s.CACHE_TTL_NL) == (600, 1800, 300)
    assert (s.CB_FAILURE_THRESHOLD, s.CB_TIMEOUT, s.CB_SUCCESS_THRESHOLD) == (3, 60, 2)
    assert s.checkpoint_path == tmp_path / "checkpoints.sqlite"
    assert s.milvus_uri == str(tmp_path / "milvus.db")
    assert s.DATABASE_URL is None and s.REDIS_URL is None


def test_reads_environment(monkeypatch):
    monkeypatch.setenv("API_PORT", "9100")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/1")
    monkeypatch.setenv("APPROVERS", "alice, bob")
    s = load_settings()
    assert s.API_PORT == 9100 and s.REDIS_URL.endswith("/1") and s.approvers == {"alice", "bob"}


@pytest.mark.parametrize("env, message", [
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with one of redis://"),
    ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must start with one of postgresql://"),
    ({"PROMETHEUS_URL": "prometheus:9090"}, "PROMETHEUS_URL must start with one of http://"),
    ({"API_PORT": "70000"}, "API_PORT"),
    ({"ENABLE_SLACK_NOTIFICATIONS": "true"}, "SLACK_WEBHOOK_URL is empty"),
    ({"LLM_MODE": "magic"}, "LLM_MODE must be"),
])
def test_bad_configuration_fails_fast_with_one_line(monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert message in str(err.value) and "\n" not in str(err.value)
