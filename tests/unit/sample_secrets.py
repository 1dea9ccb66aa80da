"""Distinctive secret values of the unit tier's stack.env, importable by test modules.

Each is long and unique, so a test can check that no report, log line or summary ever
contains one of them.
"""

USER_PASSWORD = "user-Pw-7Kq2xLm9Vt4z"  # >= 12 characters
ADMIN_PASSWORD = "admin-Pw-N3vR8cY1uJ6eW0aQ5sD2fG7hK4lZ9x"  # >= 32, different
PROXY_TOKEN = "proxy-Tok-Bp4Wn8Xe2Rz6Tc1Ym5Ua9Io3Sd7Fg0Hj"
POSTGRES_PASSWORD = "pg-Pw-Lk5Mj2Nh8Bg4Vf"
OPENAI_KEY = "sk-openai-Test9Key3Value7"
ANTHROPIC_KEY = "sk-ant-Test4Key8Value2"
