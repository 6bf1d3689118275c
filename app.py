"""Assistant Factory: st.navigation over the 8-step line."""
import streamlit as st

st.set_page_config(page_title="Assistant Factory", page_icon="🏭", layout="wide")
st.title("Assistant Factory")
st.write("Under construction.")
