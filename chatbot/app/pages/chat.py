from chatbot.app import chat_view, context, sidebar

engine = context.engine()
session_id = sidebar.render(engine)
if session_id is None:
    chat_view.render_new_session(engine)
else:
    chat_view.render_session(engine, session_id)
