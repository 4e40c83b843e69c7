"""Wire models shared by the service, the SDK and the agents (pydantic), defined once.

``common`` holds paging and error bodies; one module per domain holds its REST request and response
bodies; agent messages join here as the agent gateway lands.
"""
