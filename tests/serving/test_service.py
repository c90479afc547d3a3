"""``hybrid serve`` over real HTTP: a uvicorn process on a free loopback port serving a two-stage
recommender fitted on MovieLens-100k by the pipeline's ``recommender`` stage."""

import json
import os
import shutil
import signal
import time

import pytest
from conftest import Server

httpx = pytest.importorskip("httpx")

@pytest.fixture(scope="module")
def server(served_model, tmp_path_factory):
    model = tmp_path_factory.mktemp("live") / "recommender"
    shutil.copytree(served_model, model)
    server = Server(model, "--max-n", "50", "--max-batch", "20")
    server.model = model
    yield server
    log = server.stop()
    assert "Traceback" not in log, log


def detail(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and "Traceback" not in response.text
    return body["detail"]


def test_model_info_and_health(server):
    api = server.client
    assert api.get("/api/health").json()["status"] == "ok"
    info = api.get("/api/model").json()
    assert (info["users"], info["items"], info["kind"]) == (943, 1682, "two-stage")
    assert info["trained_on"]["ratings"] == 100_000 and info["saved_at"] and info["index"] == "exact"
    assert info["limits"]["max_n"] == 50 and info["limits"]["admin"] and "admin_token" not in info["limits"]
    assert server.admin["Authorization"].split()[1] not in json.dumps(info)
    # a page on another site whose name resolves to this address (DNS rebinding) is refused
    assert "not served here" in detail(api.get("/api/model", headers={"Host": f"evil.example:{server.port}"}), 400)
    assert api.get("/api/health", headers={"Host": f"localhost:{server.port}"}).status_code == 200
    # a form on another site the user has open cannot post here; the page's own requests can
    body = {"user_ids": ["196"], "n": 2}
    assert "another site" in detail(api.post("/api/recommendations", json=body,
                                             headers={"Origin": "http://evil.example"}), 403)
    assert api.post("/api/recommendations", json=body, headers={"Origin": server.url}).status_code == 200
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = api.get("/openapi.json").json()
    assert "/api/recommendations/new-user" in schema["paths"]


def test_known_user_single_and_batch_agree_and_filters_apply(server):
    api = server.client
    one = api.get("/api/users/196/recommendations", params={"n": 10}).json()
    assert one["user_id"] == "196" and len(one["items"]) == 10
    assert {"item_id", "score", "title", "cold"} == set(one["items"][0])
    why = api.get("/api/users/196/recommendations", params={"n": 10, "why": "true"}).json()
    assert [i["item_id"] for i in why["items"]] == [i["item_id"] for i in one["items"]]
    for item in why["items"]:
        assert item["why"] and item["explanation"]["item_id"] == item["item_id"]
        shares = item["explanation"]
        assert sum(shares["parts"].values()) + shares["offset"] == pytest.approx(item["score"], rel=1e-6)
    scores = [item["score"] for item in one["items"]]
    assert scores == sorted(scores, reverse=True)
    history = api.get("/api/users/196").json()
    rated = {item["item_id"] for item in history["rated"]}
    assert len(rated) == len(history["liked"]) > 0 and not rated & {i["item_id"] for i in one["items"]}
    batch = api.post("/api/recommendations", json={"user_ids": ["186", "196"], "n": 10}).json()
    assert [r["user_id"] for r in batch["results"]] == ["186", "196"]
    assert {"item_id", "score", "title", "cold"} == set(batch["results"][0]["items"][0])
    assert [i["item_id"] for i in batch["results"][1]["items"]] == [i["item_id"] for i in one["items"]]
    # a candidate list restricts the answer; rated items may come back when asked for
    candidates = ["1", "50", "100", "181", "258"]
    chosen = api.post("/api/recommendations", json={"user_ids": ["196"], "n": 3, "items": candidates,
                                                    "filter_already_liked_items": False}).json()
    assert {i["item_id"] for i in chosen["results"][0]["items"]} <= set(candidates)
    blocked = api.post("/api/recommendations", json={"user_ids": ["196"], "n": 10,
                                                     "filter_items": [one["items"][0]["item_id"]]}).json()
    assert one["items"][0]["item_id"] not in {i["item_id"] for i in blocked["results"][0]["items"]}
    nothing = api.post("/api/recommendations", json={"user_ids": ["186", "196"], "n": 10, "items": candidates,
                                                     "filter_items": candidates})
    assert nothing.status_code == 200 and [r["items"] for r in nothing.json()["results"]] == [[], []]
    # GET takes the contract's name for the filter, and its former name the same way
    everything = {"n": 50, "filter_already_liked_items": "false"}
    with_rated = {i["item_id"] for i in api.get("/api/users/196/recommendations", params=everything).json()["items"]}
    former = api.get("/api/users/196/recommendations", params={"n": 50, "filter_liked": "false"}).json()["items"]
    assert with_rated & rated and with_rated == {i["item_id"] for i in former}


def test_new_user_answers_are_the_python_api_answers(server):
    """Over HTTP exactly what the library answers for the same saved model (the model's own
    quality is tested in test_two_stage)."""
    from hybrid.recommend.two_stage import TwoStageRecommender

    rec = TwoStageRecommender.load(server.model)
    api = server.client
    for body in ({"liked_items": ["50", "172"]}, {"text": "horror vampire nightmare"},
                 {"liked_items": ["1"], "text": "toy animation", "include_cold": False}):
        answer = api.post("/api/recommendations/new-user", json={**body, "n": 10}).json()
        ids, scores = rec.recommend_for_new_user(N=10, **body)
        assert [i["item_id"] for i in answer["items"]] == ids.tolist()
        assert [i["score"] for i in answer["items"]] == pytest.approx(scores.tolist(), rel=1e-5)
        assert not set(body.get("liked_items", [])) & set(ids)
        assert {"item_id", "score", "title", "cold"} == set(answer["items"][0])
    # why=true: the same list, each product with its line and its parts
    body = {"liked_items": ["50", "172"], "text": "space war", "n": 10}
    plain = api.post("/api/recommendations/new-user", json=body).json()["items"]
    why = api.post("/api/recommendations/new-user", json={**body, "why": True}).json()["items"]
    assert [i["item_id"] for i in why] == [i["item_id"] for i in plain]
    for item in why:
        shares = item["explanation"]
        assert item["why"] and sum(shares["parts"].values()) + shares["offset"] == pytest.approx(item["score"], rel=1e-6)
        assert {b["item_id"] for b in shares["because"]} <= {"50", "172"}
    assert any("because you liked" in item["why"] for item in why)


def test_diversity_and_popularity_penalty_are_the_python_api_answers(server):
    from hybrid.recommend.two_stage import TwoStageRecommender

    rec = TwoStageRecommender.load(server.model)
    api = server.client
    for shaping in ({"diversity": 0.5}, {"popularity_penalty": 1.5}):
        one = api.get("/api/users/196/recommendations", params={"n": 10, **shaping}).json()
        batch = api.post("/api/recommendations", json={"user_ids": ["196"], "n": 10, **shaping}).json()
        new = api.post("/api/recommendations/new-user", json={"liked_items": ["50", "172"], "n": 10, **shaping}).json()
        ids, _ = rec.recommend("196", N=10, **shaping)
        assert [i["item_id"] for i in one["items"]] == [i["item_id"] for i in batch["results"][0]["items"]] \
            == ids.tolist()
        new_ids, _ = rec.recommend_for_new_user(liked_items=["50", "172"], N=10, **shaping)
        assert [i["item_id"] for i in new["items"]] == new_ids.tolist()
    plain = api.get("/api/users/196/recommendations", params={"n": 10}).json()["items"]
    assert [i["item_id"] for i in plain] != [i["item_id"] for i in one["items"]]
    for bad in ({"diversity": 2}, {"diversity": -0.5}, {"diversity": "nan"}, {"popularity_penalty": "inf"},
                {"popularity_penalty": -1}):
        name = next(iter(bad))
        assert name in detail(api.get("/api/users/196/recommendations", params=bad), 422)
        assert name in detail(api.post("/api/recommendations", json={"user_ids": ["196"], **bad}), 422)


def test_similar_products_search_and_details(server):
    api = server.client
    content = api.get("/api/items/50/similar", params={"by": "content", "n": 5}).json()
    collaborative = api.get("/api/items/50/similar", params={"by": "collaborative", "n": 5}).json()
    assert len(content["items"]) == len(collaborative["items"]) == 5
    assert "50" not in {i["item_id"] for i in content["items"] + collaborative["items"]}
    batch = api.post("/api/items/similar", json={"item_ids": ["50", "1"], "by": "collaborative", "n": 5}).json()
    assert batch["results"][0]["items"] == collaborative["items"]
    found = api.get("/api/search", params={"text": "star wars space", "n": 5}).json()
    titles = [i["title"] for i in found["items"]]
    assert "Star Wars" in titles and all("Star" in t for t in titles), titles
    item = api.get("/api/items/50").json()
    assert item["title"] == "Star Wars" and item["ratings"] > 100 and item["likes"] <= item["ratings"]
    assert "sci" in item["text"] and item["cold"] is False
    both = api.post("/api/items/details", json={"item_ids": ["50", "1"]}).json()
    assert [i["title"] for i in both["items"]] == ["Star Wars", "Toy Story"]


def test_bad_requests_get_4xx_json_naming_the_problem(server):
    api = server.client
    assert "new-user" in detail(api.get("/api/users/nobody/recommendations"), 404)
    assert "nobody" in detail(api.post("/api/recommendations", json={"user_ids": ["196", "nobody"]}), 404)
    assert "n" in detail(api.get("/api/users/196/recommendations", params={"n": 0}), 422)
    assert "n" in detail(api.get("/api/users/196/recommendations", params={"n": 51}), 422)
    assert "n" in detail(api.get("/api/users/196/recommendations", params={"n": "ten"}), 422)
    assert "user_ids" in detail(api.post("/api/recommendations", json={"user_ids": [str(u) for u in range(21)]}), 422)
    assert "user_ids" in detail(api.post("/api/recommendations", json={"user_ids": []}), 422)
    assert "bogus" in detail(api.post("/api/recommendations", json={"user_ids": ["196"], "bogus": 1}), 422)
    assert "body" in detail(api.post("/api/recommendations", content=b"{not json",
                                     headers={"content-type": "application/json"}), 422)
    assert "nope" in detail(api.get("/api/items/nope"), 404)
    assert "nope" in detail(api.get("/api/items/nope/similar"), 404)
    assert "nope" in detail(api.post("/api/recommendations/new-user", json={"liked_items": ["nope"]}), 404)
    assert "liked_items" in detail(api.post("/api/recommendations/new-user", json={}), 422)
    assert "by" in detail(api.get("/api/items/50/similar", params={"by": "magic"}), 422)
    assert "words" in detail(api.get("/api/search", params={"text": "   "}), 422)
    assert "no known word" in detail(api.get("/api/search", params={"text": "xyzzy qwrtp"}), 422)
    assert "text" in detail(api.get("/api/search"), 422)
    assert "text" in detail(api.get("/api/search", params={"text": "a" * 10_001}), 422)
    assert "bytes" in detail(api.post("/api/recommendations/new-user", content=b"{" + b" " * (5 << 20) + b"}",
                                      headers={"content-type": "application/json"}), 413)
    # no request names a file: ids that look like paths are ids, unknown ones
    assert detail(api.get("/api/items/..%2F..%2Fetc%2Fpasswd"), 404)
    assert "unknown" in detail(api.post("/api/items/details", json={"item_ids": ["../../etc/passwd"]}), 404)
    assert api.get("/api/health").status_code == 200  # still serving


def test_added_items_are_recommendable_at_once(server):
    api = server.client
    new = {"items": [{"item_id": "web-1", "title": "Vampire Nights", "description": "a horror film of vampires "
                      "and a haunted castle at night"},
                     {"item_id": "web-2", "text": "documentary about tax law"}]}
    assert "admin token" in detail(api.post("/api/items", json=new), 401)  # a credential, or nothing changes
    assert "admin token" in detail(api.post("/api/items", json=new, headers={"Authorization": "Bearer wrong"}), 401)
    added = api.post("/api/items", json=new, headers=server.admin).json()
    assert added["added"] == 2 and added["items"] == 1684
    item = api.get("/api/items/web-1").json()
    assert item["cold"] and item["ratings"] == 0 and "vampires" in item["text"]
    found = api.get("/api/search", params={"text": "vampires haunted castle", "n": 10}).json()
    assert "web-1" in {i["item_id"] for i in found["items"]}
    chosen = api.post("/api/recommendations", json={"user_ids": ["196"], "n": 2, "items": ["web-1", "web-2"]}).json()
    assert {i["item_id"] for i in chosen["results"][0]["items"]} == {"web-1", "web-2"}
    assert all(i["cold"] for i in chosen["results"][0]["items"])
    add = lambda body: api.post("/api/items", json=body, headers=server.admin)  # noqa: E731
    assert "already known" in detail(add({"items": [{"item_id": "web-1", "text": "x"}]}), 422)
    assert "no usable text" in detail(add({"items": [{"item_id": "web-3"}]}), 422)
    assert "items" in detail(add({"items": []}), 422)


def test_reload_swaps_the_model_and_a_failed_reload_keeps_the_old_one(served_model, tmp_path):
    model = tmp_path / "recommender"
    shutil.copytree(served_model, model)
    server = Server(model)
    try:
        api = server.client
        before = api.get("/api/users/196/recommendations").json()
        assert "admin token" in detail(api.post("/api/admin/reload"), 401)
        api.post("/api/items", json={"items": [{"item_id": "gone", "text": "space war"}]}, headers=server.admin)
        reloaded = api.post("/api/admin/reload", headers=server.admin).json()
        assert reloaded["generation"] == 2
        # the reloaded model is the saved directory: live additions are not in it
        assert api.get("/api/items/gone").status_code == 404
        assert api.get("/api/users/196/recommendations").json() == before
        manifest = model / "manifest.json"
        saved = manifest.read_text()
        manifest.write_text("{ broken")
        failed = detail(api.post("/api/admin/reload", headers=server.admin), 503)
        assert "still serving generation 2" in failed
        assert api.get("/api/users/196/recommendations").json() == before
        assert "not a saved two-stage" in api.get("/api/model").json()["last_reload_error"]
        manifest.write_text(saved)
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.time() + 60
        while api.get("/api/health").json()["generation"] != 3 and time.time() < deadline:
            time.sleep(0.2)
        assert api.get("/api/health").json()["generation"] == 3
        # a model copied over the served folder rewrites its files in place (cp -r): the worker
        # reads a private copy, so it keeps answering from what it loaded
        serving, answers = api.get("/api/model").json()["pid"], {}
        files = {path: path.read_bytes() for path in sorted(model.rglob("*")) if path.is_file()}
        for path in files:
            with open(path, "r+b") as handle:
                handle.truncate(0)
        for call in ("/api/users/196/recommendations", "/api/items/50/similar?by=content&n=50",
                     "/api/items/50/similar?by=collaborative&n=50", "/api/search?text=space+war&n=50",
                     "/api/items/1"):
            answers[call] = api.get(call)
        for path, data in files.items():
            with open(path, "r+b") as handle:
                handle.write(data)
        assert {call: response.status_code for call, response in answers.items()} == dict.fromkeys(answers, 200)
        assert answers["/api/users/196/recommendations"].json() == before
        assert api.get("/api/model").json()["pid"] == serving
    finally:
        log = server.stop()
    assert "Traceback" not in log, log
    assert not list(model.parent.glob(".recommender.serving-*"))  # the private copies are gone


def test_a_reload_under_load_fails_no_request_and_a_dead_process_is_replaced(served_model, tmp_path):
    """The new model loads in a new process; the old one answers until the handover and closes
    its connections after their next answer: a client busy on several connections sees no error."""
    import threading

    model = tmp_path / "recommender"
    shutil.copytree(served_model, model)
    server = Server(model)
    statuses, generations, stop = [], set(), threading.Event()

    def client():
        with httpx.Client(base_url=server.url, timeout=30) as api:
            while not stop.is_set():
                try:
                    response = api.get("/api/users/196/recommendations", params={"n": 5})
                    statuses.append(response.status_code)
                    generations.add(api.get("/api/health").json()["generation"])
                except httpx.HTTPError as exc:
                    statuses.append(type(exc).__name__)

    try:
        first = server.client.get("/api/model").json()
        threads = [threading.Thread(target=client) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1)
        assert server.client.post("/api/admin/reload", headers=server.admin).json()["generation"] == 2
        time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join()
        assert len(statuses) > 20 and set(statuses) == {200}, {s for s in statuses if s != 200}
        assert generations == {1, 2}
        with httpx.Client(base_url=server.url, timeout=30) as fresh:
            second = fresh.get("/api/model").json()
            assert second["generation"] == 2 and second["pid"] != first["pid"]
            os.kill(second["pid"], signal.SIGKILL)  # a crash: a new process takes over
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    if fresh.get("/api/health").json()["generation"] == 3:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            third = fresh.get("/api/model").json()
            assert third["generation"] == 3 and third["pid"] not in (first["pid"], second["pid"])
    finally:
        stop.set()
        log = server.stop()
    assert server.process.returncode == 0, log
    assert "Traceback" not in log, log
    assert "exited with code -9; starting a new one" in log


def test_serve_reports_a_model_that_cannot_load(served_model, tmp_path):
    import subprocess
    import sys

    model = tmp_path / "recommender"
    shutil.copytree(served_model, model)
    (model / "manifest.json").write_text("{ broken")
    from conftest import free_port

    done = subprocess.run([sys.executable, "-m", "hybrid", "serve", "--model", str(model), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "not a saved two-stage" in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_an_unexpected_failure_is_a_500_without_a_traceback(served_model):
    from fastapi.testclient import TestClient

    from hybrid.serving.app import create_app
    from hybrid.serving.slot import ModelSlot

    slot = ModelSlot(served_model)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire at /secret/path")

    slot.current.rec.recommend = broken
    client = TestClient(create_app(slot), raise_server_exceptions=False)
    response = client.get("/api/users/196/recommendations")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (RuntimeError); see the server log"}
    assert client.get("/api/health").status_code == 200


def test_without_an_admin_token_nothing_changes_and_additions_are_bounded(served_model):
    from fastapi.testclient import TestClient

    from hybrid.serving.app import create_app
    from hybrid.serving.slot import ModelSlot, ServiceLimits

    slot = ModelSlot(served_model)
    off = TestClient(create_app(slot))
    new = {"items": [{"item_id": "x1", "text": "space war"}, {"item_id": "x2", "text": "love story"}]}
    for path, body in (("/api/admin/reload", None), ("/api/items", new)):
        assert "--admin-token-file" in detail(off.post(path, json=body), 403)
    assert off.get("/api/model").json()["limits"]["admin"] is False
    token = "a-token-of-twenty-chars"
    bounded = TestClient(create_app(slot, ServiceLimits(max_added_items=3, admin_token=token)))
    admin = {"Authorization": f"Bearer {token}"}
    assert bounded.post("/api/items", json=new, headers=admin).json() == {"added": 2, "items": 1684}
    assert "max_added_items" in detail(bounded.post("/api/items", json={"items": [{"item_id": "x3", "text": "a"},
                                                                                  {"item_id": "x4", "text": "b"}]},
                                                    headers=admin), 409)
    assert bounded.get("/api/items/x3").status_code == 404  # nothing of a refused batch was added


def test_an_id_with_a_slash_is_answered_over_http(served_model):
    from fastapi.testclient import TestClient

    from hybrid.serving.app import create_app
    from hybrid.serving.slot import ModelSlot, ServiceLimits

    token = "a-token-of-twenty-chars"
    api = TestClient(create_app(ModelSlot(served_model), ServiceLimits(admin_token=token)))
    new = {"items": [{"item_id": "box/set 2", "text": "space war robots galaxy"},
                     {"item_id": "box/set 2/similar", "text": "love story wedding"}]}
    assert api.post("/api/items", json=new, headers={"Authorization": f"Bearer {token}"}).json()["added"] == 2
    assert api.get("/api/items/box%2Fset%202").json()["item_id"] == "box/set 2"
    similar = api.get("/api/items/box%2Fset%202/similar", params={"n": 3}).json()
    assert similar["item_id"] == "box/set 2" and len(similar["items"]) == 3
    assert "unknown" in detail(api.get("/api/items/box%2Fnothing"), 404)
    assert "unknown" in detail(api.get("/api/users/1%2F96/recommendations"), 404)


def test_a_large_batch_is_answered_in_slices_with_other_requests_between_them(served_model):
    import asyncio

    from hybrid.serving.app import create_app
    from hybrid.serving.slot import ModelSlot, ServiceLimits

    slot = ModelSlot(served_model)
    users = [str(u) for u in slot.current.rec.users.ids(range(40))]
    app = create_app(slot, ServiceLimits(max_answers=400, slice_ms=0.001))  # a slice per user
    finished = []

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as api:
            async def call(name, method, path, body=None):
                response = await api.request(method, path, json=body)
                finished.append(name)
                return response
            return await asyncio.gather(
                call("batch", "POST", "/api/recommendations", {"user_ids": users, "n": 10}),
                call("single", "GET", f"/api/users/{users[-1]}/recommendations"),
                call("too large", "POST", "/api/recommendations", {"user_ids": users, "n": 11}))
    batch, single, large = asyncio.run(scenario())
    assert finished[-1] == "batch"  # the single request did not wait for the whole batch
    answers = batch.json()["results"]
    assert [a["user_id"] for a in answers] == users and answers[-1]["items"] == single.json()["items"]
    assert "max_answers" in detail(large, 422)


def test_serve_refuses_a_short_admin_token(served_model, tmp_path, capsys):
    from hybrid.cli import main

    (tmp_path / "token").write_text("short\n")
    assert main(["serve", "--model", str(served_model), "--admin-token-file", str(tmp_path / "token")]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
    assert main(["serve", "--model", str(served_model), "--admin-token-file", str(tmp_path / "none")]) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_serve_refuses_a_directory_without_a_model(tmp_path, served_model, capsys):
    from hybrid.cli import main

    assert main(["serve", "--model", str(tmp_path)]) == 2
    assert "no saved recommender" in capsys.readouterr().err
    assert main(["serve", "--model", str(served_model), "--port", "0"]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["serve", "--model", str(served_model), "--workers", "0"]) == 2
    assert "--workers must be a positive whole number of processes" in capsys.readouterr().err


def test_the_page_is_served(server):
    page = server.client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="search-text"' in page.text and 'fetch("/api" + path' in page.text


def test_a_run_ends_with_the_next_steps(served_model, ml100k, capsys):
    from hybrid.cli import main

    out = ml100k[2]
    fast = ["--recommender-param", "retrieval.epochs=4", "--recommender-param", "train.epochs=1",
            "--recommender-param", "validation_share=0"]  # as the served_model fixture ran it
    assert main(["run", "--out", str(out), "--stage", "recommender", *fast]) == 0
    shown = capsys.readouterr().out
    assert "nothing to do" in shown and f"hybrid serve --model {out / 'recommender'}" in shown
    command = next(line for line in shown.splitlines() if "hybrid recommend" in line).split()
    assert command[-2] == "--user"
    assert main(command[1:]) == 0 and len(capsys.readouterr().out.splitlines()) == 11  # a header and 10 products
    assert main(["run", "--out", str(out), "--stage", "recommender", *fast, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)  # the same, for a program
    assert summary["ran"] == [] and summary["next"]["model"] == str(out / "recommender")
    assert summary["next"]["user"] == command[-1] and summary["next"]["settings"] == str(out / "settings.toml")


def test_the_command_line_answers_from_the_two_stage_model(served_model, capsys):
    from hybrid.cli import main
    from hybrid.recommend.two_stage import TwoStageRecommender

    model = ["--model-dir", str(served_model)]
    rec = TwoStageRecommender.load(served_model)
    assert main(["recommend", "--user", "196", "--n", "5", "--json", *model]) == 0
    top = json.loads(capsys.readouterr().out)
    assert [t["item_id"] for t in top] == rec.recommend("196", N=5)[0].tolist()
    assert main(["recommend", "--liked", "50,172", "--text", "space", "--json", "--no-cold", *model]) == 0
    picks = json.loads(capsys.readouterr().out)
    assert len(picks) == 10 and not {"50", "172"} & {p["item_id"] for p in picks}
    assert main(["similar", "--item", "50", "--by", "collaborative", "--n", "3", "--json", *model]) == 0
    similar = json.loads(capsys.readouterr().out)
    assert [s["item_id"] for s in similar] == rec.similar_items("50", N=3, by="collaborative")[0].tolist()
    # --why: a line a person reads, and for a program the parts that add up to the score
    assert main(["recommend", "--user", "196", "--n", "5", "--why", "--json", *model]) == 0
    why = json.loads(capsys.readouterr().out)
    assert [w["item_id"] for w in why] == [t["item_id"] for t in top]
    for answer in why:
        parts = answer["explanation"]
        assert sum(parts["parts"].values()) + parts["offset"] == pytest.approx(answer["score"], rel=1e-6)
        assert answer["why"].startswith(("because you liked", "matches", "close to "))
    assert main(["recommend", "--user", "196", "--n", "3", "--why", *model]) == 0
    assert "because you liked" in capsys.readouterr().out
    assert main(["recommend", "--liked", "50,172", "--text", "space war", "--why", "--json", *model]) == 0
    new = json.loads(capsys.readouterr().out)
    assert any(n["explanation"]["because"] for n in new) and all("network" not in n["explanation"]["parts"] for n in new)
    # shaping: the library's answer, and a value out of range refused before the model loads
    assert main(["recommend", "--user", "196", "--diversity", "0.5", "--popularity-penalty", "0.5", "--json",
                 *model]) == 0
    shaped = [t["item_id"] for t in json.loads(capsys.readouterr().out)]
    assert shaped == rec.recommend("196", N=10, diversity=0.5, popularity_penalty=0.5)[0].tolist()
    assert main(["recommend", "--user", "196", "--diversity", "3", *model]) == 2
    assert "diversity must be a number between 0 and 1" in capsys.readouterr().err
    assert main(["similar", "--text", "haunted house", "--json", *model]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 10
    assert main(["recommend", "--user", "nobody", *model]) == 2
    assert "--liked" in capsys.readouterr().err
    assert main(["recommend", "--user", "196", "--n", "0", *model]) == 2


def test_every_answer_of_a_loaded_model_is_given_without_tensorflow(served_model):
    """A loaded two-stage recommender answers from NumPy arrays and indexes, new users and added
    products included (the towers' unknown paths in NumPy): neither the command line nor a
    serving process waits for TensorFlow or holds its memory."""
    import subprocess
    import sys

    code = (f"import sys, hybrid, pandas; rec = hybrid.load({str(served_model)!r}); rec.recommend('196', N=10); "
            "rec.similar_items('50', N=5); rec.similar_items('50', N=5, by='collaborative'); "
            "rec.similar_to_text('haunted house', N=5); rec.recommend_for_new_user(liked_items=['50'], N=5); "
            "rec.recommend_for_new_user(liked_items=['50'], text='space war', N=5); "
            "rec.recommend_for_new_user(text='space war', N=5); rec.explain('196', ['50']); "
            "rec.add_items(pandas.DataFrame({'item_id': ['new'], 'text': ['vampire castle']})); "
            "print(rec.recommend('196', N=1, items=['new'])[0]); print('tensorflow' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert shown.stdout.split() == ["['new']", "False"], shown.stderr[-2000:]


def test_workers_answer_side_by_side_and_hold_the_same_products(served_model, tmp_path):
    """With --workers 2 each new connection goes to either process: a product added through one
    is answered by both, a process that dies is replaced holding it too, and a reload serves the
    saved model from two new processes."""
    model = tmp_path / "recommender"
    shutil.copytree(served_model, model)
    server = Server(model, "--workers", "2")

    def by_process(path: str, tries: int = 60) -> dict:
        seen = {}
        for _ in range(tries):  # a connection of its own each time: the kernel picks the process
            with httpx.Client(base_url=server.url, timeout=30, headers={"Connection": "close"}) as api:
                pid = api.get("/api/model").json()["pid"]
                seen.setdefault(pid, api.get(path))
        return seen

    try:
        first = by_process("/api/health")
        assert len(first) == 2 and {r.json()["generation"] for r in first.values()} == {1}
        new = {"items": [{"item_id": "web-1", "title": "Vampire Nights", "description": "vampires in a castle"}]}
        added = server.client.post("/api/items", json=new, headers=server.admin).json()
        assert added == {"added": 1, "items": 1683}
        answers = by_process("/api/items/web-1")
        assert set(answers) == set(first) and all(r.status_code == 200 for r in answers.values())
        assert {r.json()["title"] for r in answers.values()} == {"Vampire Nights"}
        os.kill(next(iter(first)), signal.SIGKILL)
        deadline, answers = time.time() + 120, {}
        while time.time() < deadline and not set(answers) - set(first):
            answers = by_process("/api/items/web-1", tries=10)
        replacement = set(answers) - set(first)
        assert replacement and all(answers[pid].status_code == 200 for pid in replacement)
        assert server.client.post("/api/admin/reload", headers=server.admin).status_code == 200
        after = by_process("/api/items/web-1")
        assert len(after) == 2 and not set(after) & set(answers)
        assert {r.status_code for r in after.values()} == {404}  # the saved model, without the addition
    finally:
        log = server.stop()
    assert server.process.returncode == 0, log
    assert "Traceback" not in log, log
