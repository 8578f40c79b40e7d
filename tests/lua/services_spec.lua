-- The services policy: custom fields (options, catalog entries, text) and known
-- services named in the title and summary, by whole word.
local services = require("policies.services")

local function cf(name, values)
  return { custom_field = { id = "F-" .. name, name = name, field_type = "multi_select" }, values = values }
end

describe("services policy", function()
  it("canonicalises names and aliases", function()
    assert.equals("payments-api", services.canonical("Payments API"))
    assert.equals("payments-api", services.canonical("payments_api"))
    assert.equals("payments-api", services.canonical("svc-payments"))
    assert.equals("user-auth", services.canonical("User Auth"))
    assert.equals("billing-worker", services.canonical("Billing Worker"))
    assert.is_nil(services.canonical(""))
  end)

  it("recognises service custom fields by name", function()
    assert.is_true(services.is_service_field("Affected services"))
    assert.is_true(services.is_service_field("Affected services (catalog)"))
    assert.is_true(services.is_service_field("Service"))
    assert.is_false(services.is_service_field("Root cause"))
    assert.is_false(services.is_service_field("Servicename"))
  end)

  it("reads options, catalog entries and text values of service fields only", function()
    local inc = {
      name = "Something broke",
      custom_field_entries = {
        cf("Affected services", { { value_option = { id = "o1", value = "payments-api" } } }),
        cf("Affected services (catalog)", {
          { value_catalog_entry = { id = "c1", name = "checkout-service", aliases = { "checkout" } } } }),
        cf("Service", { { value_text = "Billing Worker, search" } }),
        cf("Root cause", { { value_text = "inventory-api exhausted its pool" } }),
      },
    }
    local list, refs = services.from_custom_fields(inc)
    table.sort(list)
    assert.same({ "billing-worker", "checkout-service", "payments-api", "search" }, list)
    assert.same({ field_id = "F-Affected services", option_id = "o1" }, refs["payments-api"])
    assert.same({ field_id = "F-Affected services (catalog)", catalog_entry_id = "c1" }, refs["checkout-service"])
  end)

  it("finds known services in title and summary by whole word", function()
    assert.same({ "checkout-service", "payments-api" },
      services.from_text("Checkout errors: payments-api returns 502"))
    assert.same({ "user-auth" }, services.from_text("Login failures for Okta tenants"))
    -- not inside other words, and "search" alone is too common to count
    assert.same({}, services.from_text("Paymentsapi reauthorise; we searched the logs"))
    assert.same({}, services.from_text("Search for the root cause"))
    assert.same({ "search" }, services.from_text("search-api indexing lag"))
  end)

  it("extracts custom fields and text together, sorted and distinct", function()
    local inc = {
      name = "payments-api 504s",
      summary = "Customers cannot check out: `checkout-service` sees 502s from payments-api.",
      custom_field_entries = { cf("Affected services", { { value_option = { id = "o1", value = "payments-api" } } }) },
    }
    assert.same({ "checkout-service", "payments-api" }, services.extract(inc))
    assert.is_true(services.matches(services.extract(inc), "Payments API"))
    assert.is_false(services.matches(services.extract(inc), "search"))
  end)
end)
