from tests.test_app import *

def test_probe(scripted, store):
    at = new_app_with_session(store)
    cid = only_session(store).id
    print("before", at.text_input(key=f"title_{cid}").value, [h.value for h in at.header])
    send(at, "첫 메시지로 이름 짓기")
    print("after", at.text_input(key=f"title_{cid}").value, [h.value for h in at.header], only_session(store).title)
    at.button(key=f"rename_{cid}").click(); run(at)
    print("after rename click", only_session(store).title)
