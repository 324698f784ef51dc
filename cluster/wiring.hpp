// Cluster mode's start-up and its ports for the one wiring (actors/graph):
// the instance goes live in etcd, imports the data directory into an empty
// etcd once, and starts from etcd's state; then its stores, claims, lines
// and links are the graph's ports.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/graph.hpp"
#include "cluster/cluster.hpp"

namespace vb {

struct cluster_options {
  std::vector<std::string> endpoints;
  /// TLS and authentication to etcd (etcd_options).
  std::string ca, cert, key, user, password;
  std::string prefix = "/vb/";
  double ttl = 10;
  /// Empty: the one kept in DATA_DIR/instance_id.
  std::string instance_id;
  std::string data_dir;
  /// Where the relay is published (HOST, PORT; 0: any free port), and what
  /// publishes it and connects to the others': the middleman, or mutual TLS
  /// (tls::caf_transport).
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  caf::io::middleman_actor transport;
  bool mutual_tls = false; // what `transport` is, for the log
  /// The instance key's value: how to reach this instance's HTTP API.
  std::string server_url;
  std::string version;
};

/// A live cluster instance's own actors.
struct cluster_instance {
  std::shared_ptr<cluster_context> ctx;
  membership_actor membership;
  cluster_relay_actor relay;
  provider_links_actor links;
  /// The relay's port, and the revision the owners' state was read at.
  uint16_t port = 0;
  caf::io::middleman_actor transport;
  int64_t revision = 0;

  /// Stops its actors (a start-up that failed half way).
  void stop() const;
  /// Closes the cluster port (at shutdown; the links drop with the process).
  void unpublish() const;
};

/// Start-up, blocking: publishes the relay, waits for a live lease, imports
/// the loaded `seeds` into an empty etcd once, then replaces `state` with
/// etcd's. Returns an error text, or empty.
std::string start_cluster(caf::actor_system& sys, const cluster_options& opts,
                          std::shared_ptr<server_stats> stats,
                          std::vector<std::pair<std::string, journal_store_seed*>>
                            seeds,
                          graph_state& state, cluster_instance& out);

/// The graph's ports in cluster mode: an etcd store per owner, reservations
/// for joins' names, lines and CAF links across instances.
graph_ports cluster_ports(caf::actor_system& sys, const cluster_instance& c,
                          std::shared_ptr<server_stats> stats);

} // namespace vb
