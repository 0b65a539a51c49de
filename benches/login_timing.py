"""Unknown user versus wrong password, timed side by side (issue 13): each login attempt is
refused with 28P01 after a full SCRAM exchange; the medians should match. Run against a pgtide
on 127.0.0.1:6432 whose config has user `app` (e.g. `pgtide demo`), with psycopg:
    target/drivers/venv/bin/python benches/login_timing.py
"""
import time, statistics, psycopg, sys
def attempt(user, pw):
    t = time.perf_counter()
    try:
        psycopg.connect(f"host=127.0.0.1 port=6432 dbname=app user={user} password={pw} sslmode=disable").close()
    except psycopg.OperationalError as e:
        pass
    return (time.perf_counter() - t) * 1e3
for _ in range(20):
    attempt("app", "wrong"); attempt("nobody", "wrong")
res = {"wrong password (app)": [], "unknown user (nobody)": []}
for i in range(300):
    res["wrong password (app)"].append(attempt("app", "wrong"))
    res["unknown user (nobody)"].append(attempt("nobody", "wrong"))
for k, v in res.items():
    v.sort()
    print(f"{k}: median {statistics.median(v):.3f} ms, p10 {v[30]:.3f}, p90 {v[270]:.3f}")
