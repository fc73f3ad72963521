"""Streamlit page scripts, registered by st.navigation in dashboard/app.py; thin: they call dashboard/ and operations/."""
