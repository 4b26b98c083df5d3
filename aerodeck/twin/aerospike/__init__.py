"""The twin's Aerospike nodes: wire protocol, info commands and one TCP endpoint per node."""

from aerodeck.twin.aerospike.info import NodeView
from aerodeck.twin.aerospike.node_server import ClusterEndpoints, NodeServer, attach_fleet

__all__ = ["ClusterEndpoints", "NodeServer", "NodeView", "attach_fleet"]
