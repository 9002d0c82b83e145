"""The dashboard pages: scripts run by Streamlit through the router in dashboard/app.py.

Not named ``pages/``: Streamlit treats a ``pages/`` folder next to the entry file as an old-style multipage
app and runs its scripts without the router until someone opens the main page.
"""
