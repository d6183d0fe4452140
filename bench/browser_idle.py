"""When is a Streamlit page really drawn?  One JavaScript predicate shared by the browser benchmarks.

Streamlit reports its script run as finished (`data-test-script-state`) before the browser has drawn what the
run sent: widgets and charts whose code is loaded lazily show a skeleton (`stSkeleton`) until their JavaScript
chunk has arrived and run (plotly.js alone: about half a second of CPU the first time in a tab), and a plotly
chart's SVG appears only after Plotly has drawn it. A first view timed up to the end of the script run left that
work to whatever was timed next. DRAWN holds only when
  * no element is stale (left from an earlier run) and the status widget ("Running...") is gone,
  * no skeleton is left,
  * every plotly chart has been drawn (its `.main-svg` exists),
  * every image has loaded.
"""

DRAWN_JS = """(
  document.querySelectorAll('[data-stale="true"]').length === 0
  && !document.querySelector('[data-testid="stStatusWidget"]')
  && !document.querySelector('[data-testid="stSkeleton"]')
  && Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]')).every(c => c.querySelector('.main-svg'))
  && Array.from(document.querySelectorAll('[data-testid="stMain"] img')).every(i => i.complete)
)"""

# as a function for page.wait_for_function / page.evaluate
DRAWN = "() => " + DRAWN_JS

#: the app's own navigation links in the sidebar (vitviz/ui/navigation.py: st.page_link, titles and icons), or
#: Streamlit's sidebar navigation, which the app used before (so a before/after run can drive an older checkout)
NAV_LINKS = ('[data-testid="stSidebar"] [data-testid="stPageLink"], '
             '[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
